"""Normalising what the user tracks, on the caller's thread, and flattening it for trackers.

``normalise`` runs inside ``track_this`` and so is on the hot path: exact built-in types are checked
first and returned as they are. It turns pydantic models into dicts (by alias, JSON mode), tuples
into lists, numbers of other libraries (numpy scalars) into int or float, and rejects everything
that cannot be stored as JSON, naming the key.

``flatten`` runs on the delivery side: nested dicts become dotted keys (``eggs.ham``).
"""

from __future__ import annotations

import enum
import numbers
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from trackhook.errors import InvalidValueError

__all__ = ["Value", "check_step", "flatten", "is_metric", "normalise", "normalise_values"]

Value = Any
"""A normalised value: int, float, str, bool, None, or lists and str-keyed dicts of these."""

_PLAIN = frozenset({int, float, str, bool, type(None)})
# An int beyond a float's range cannot become a metric in any tracker (they store doubles).
_FLOAT_RANGE_MAX = int(sys.float_info.max)
_FLOAT_RANGE_MIN = -_FLOAT_RANGE_MAX
_TOO_BIG = "the int is beyond the range of a float, which trackers store metrics as"
_HINT = "track an int, float, str, bool, None, a list, a dict or a pydantic model"


def check_step(step: object) -> int:
    """Return ``step`` as an int, or raise if it is not a non-negative integer."""
    if type(step) is not int:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise InvalidValueError(
                "step", f"the step must be a non-negative int, got {type(step).__name__} {step!r}"
            )
        step = int(step)
    if step < 0:
        raise InvalidValueError("step", f"the step must be a non-negative int, got {step}")
    return step


def normalise_values(values: Mapping[str, object]) -> dict[str, Value]:
    """Normalise every keyword of one ``track_this`` call, or raise before any is recorded."""
    if not values:
        return {}
    clean: dict[str, Value] = {}
    for key, value in values.items():
        if not key:
            raise InvalidValueError(key, "keys must not be empty")
        kind = type(value)
        if kind is int and not _FLOAT_RANGE_MIN <= value <= _FLOAT_RANGE_MAX:  # type: ignore[operator]
            raise InvalidValueError(key, _TOO_BIG)
        if kind in _PLAIN:
            clean[key] = value
            continue
        try:
            clean[key] = normalise(key, value)
        except RecursionError:
            raise InvalidValueError(key, "it is nested too deeply, or contains itself") from None
    return clean


def normalise(key: str, value: object) -> Value:
    """Return ``value`` in a JSON-storable form, or raise ``InvalidValueError`` naming ``key``."""
    kind = type(value)
    if kind is int and not _FLOAT_RANGE_MIN <= value <= _FLOAT_RANGE_MAX:  # type: ignore[operator]
        raise InvalidValueError(key, _TOO_BIG)
    if kind in _PLAIN:
        return value
    if isinstance(value, enum.Enum):
        return normalise(key, value.value)
    if isinstance(value, str):  # a str subclass (numpy.str_, ...)
        return str(value)
    model_dump = getattr(value, "model_dump", None)
    if model_dump is not None and not isinstance(value, type):
        try:
            dumped = model_dump(by_alias=True, mode="json")
        except Exception as error:  # pydantic's serialisation errors, whatever their class
            raise InvalidValueError(key, f"the model cannot be dumped: {error}") from error
        return normalise(key, dumped)
    if isinstance(value, Mapping):
        return _normalise_mapping(key, value)
    if isinstance(value, (list, tuple)):
        return [normalise(f"{key}[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, numbers.Integral):
        return normalise(key, int(value))
    if isinstance(value, numbers.Real):
        return float(value)
    tolist = getattr(value, "tolist", None)
    extra = " (for an array or tensor, track value.tolist() or a summary number)" if tolist else ""
    raise InvalidValueError(key, f"a {kind.__name__} cannot be tracked; {_HINT}{extra}")


def _normalise_mapping(key: str, value: Mapping[Any, object]) -> dict[str, Value]:
    clean: dict[str, Value] = {}
    for inner_key, inner in value.items():
        if isinstance(inner_key, bool) or not isinstance(inner_key, (str, int)):
            raise InvalidValueError(
                f"{key}.{inner_key!r}",
                f"dict keys must be strings (or ints), got {type(inner_key).__name__}",
            )
        name = str(inner_key)
        if not name:
            raise InvalidValueError(f"{key}.", "dict keys must not be empty")
        if name in clean:
            raise InvalidValueError(
                f"{key}.{name}", f"the keys {inner_key!r} and {name!r} both become {name!r}"
            )
        clean[name] = normalise(f"{key}.{name}", inner)
    return clean


def is_metric(value: object) -> bool:
    """Numbers are metrics; bools, although ints in Python, are parameters."""
    return type(value) is int or type(value) is float


def flatten(key: str, value: Value) -> Iterator[tuple[str, Value]]:
    """Yield ``(dotted_key, leaf)`` for every leaf of a nested dict; other values as they are."""
    if isinstance(value, dict):
        if not value:
            return
        for inner_key, inner in value.items():
            yield from flatten(f"{key}.{inner_key}", inner)
    else:
        yield key, value
