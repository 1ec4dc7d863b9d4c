"""Turning what a framework hands over into values trackhook takes, without ever raising.

``track_this`` refuses what it cannot store and names the key: right for a user's own call, wrong
inside a trainer, where a refused hyperparameter would end hours of training. The bridges first
offer each value to the core's own conversions (numpy scalars, 0-d tensors, enums, paths, dates,
pydantic models) and convert only what those refuse: an ``argparse.Namespace`` becomes its dict,
a small array or tensor its list, a class or function its qualified name, and anything else its
``str``. What the core accepts is never changed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from trackhook.errors import InvalidValueError
from trackhook.values import normalise

__all__ = ["MAX_LISTED_ELEMENTS", "trackable", "trackable_dict"]

MAX_LISTED_ELEMENTS = 1000
"""An array or tensor with more elements is described (type, shape, dtype), not listed."""

_MAX_DEPTH = 32


def trackable_dict(values: Mapping[Any, object] | argparse.Namespace) -> dict[str, object]:
    """``values`` (a mapping or a ``Namespace``) with str keys and trackable values."""
    items = vars(values) if isinstance(values, argparse.Namespace) else values
    return {str(key): trackable(value) for key, value in items.items()}


def trackable(value: object, depth: int = 0) -> object:
    """``value`` in a form that ``track_this`` accepts; never raises."""
    try:
        return normalise("value", value)
    except (InvalidValueError, RecursionError):
        pass
    except Exception:  # a foreign object's conversion hook failed (model_dump, item, ...)
        return _text(value)
    if depth >= _MAX_DEPTH:
        return _text(value)
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(key): trackable(inner, depth + 1) for key, inner in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [trackable(inner, depth + 1) for inner in value]
    listed = _as_list(value)
    if listed is not None:
        return trackable(listed, depth + 1)
    if isinstance(value, type) or callable(value):
        return _qualified_name(value)
    return _text(value)


def _as_list(value: object) -> list[object] | str | None:
    """A numpy array or a tensor as a list when it is small enough to read as one, else a
    description of it; ``None`` for anything else."""
    tolist = getattr(value, "tolist", None)
    numel = getattr(value, "numel", None)  # torch: numel(); numpy: size
    count = numel() if callable(numel) else getattr(value, "size", None)
    if not callable(tolist) or not isinstance(count, int):
        return None
    if count > MAX_LISTED_ELEMENTS:
        shape = tuple(getattr(value, "shape", ()))
        return f"{type(value).__name__}(shape={shape}, dtype={getattr(value, 'dtype', '?')})"
    try:
        listed = tolist()
    except Exception:
        return None
    return listed if isinstance(listed, list) else [listed]


def _qualified_name(value: object) -> str:
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(name, str):
        return _text(value)
    return f"{module}.{name}" if isinstance(module, str) else name


def _text(value: object) -> str:
    """``str(value)``, valid Unicode, or a description when even that fails."""
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text.encode("utf-8", errors="replace").decode("utf-8")
