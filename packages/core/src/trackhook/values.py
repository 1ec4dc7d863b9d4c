"""Normalising what the user tracks, on the caller's thread, and flattening it for trackers.

``normalise`` runs inside ``track_this`` and so is on the hot path: exact built-in types are checked
first and returned as they are. It turns pydantic models into dicts (by alias, JSON mode), tuples
into lists, numbers of other libraries (numpy scalars, numpy bools, 0-d arrays and tensors) into
int, float or bool, dates and times into ISO 8601 strings, paths and UUIDs into strings, and
rejects everything that cannot be stored as JSON, naming the key (and the conversion to write
where there is more than one reasonable one: ``Decimal``, ``timedelta``, ``bytes``). It also
refuses what no tracker can take, so that one bad value never blocks the values behind it: steps
beyond int64 and strings (keys or values, at any depth) that are not valid Unicode (lone
surrogates), and two spellings of one call that reach trackers as the same dotted key
(``a={"b": 1}`` and ``**{"a.b": 2}``). Across calls there is no such conflict: a later value of a
key at a step replaces the earlier one, as in the run log.

``flatten`` runs on the delivery side: nested dicts become dotted keys (``eggs.ham``).
"""

from __future__ import annotations

import enum
import numbers
import sys
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from trackhook.errors import InvalidValueError
from trackhook.files import TrackedContent

__all__ = [
    "MAX_STEP",
    "Value",
    "check_step",
    "flatten",
    "is_metric",
    "normalise",
    "normalise_values",
    "only_plain_floats",
]

Value = Any
"""A normalised value: int, float, str, bool, None, or lists and str-keyed dicts of these."""

_PLAIN = frozenset({int, float, str, bool, type(None)})
# An int beyond a float's range cannot become a metric in any tracker (they store doubles).
_FLOAT_RANGE_MAX = int(sys.float_info.max)
_FLOAT_RANGE_MIN = -_FLOAT_RANGE_MAX
_TOO_BIG = "the int is beyond the range of a float, which trackers store metrics as"
_FILES_IN_LISTS = (
    "a trackhook.File or trackhook.Image can be tracked at a key or in a dict, not in a list: "
    "give each its own key, e.g. {'0': trackhook.Image(a), '1': trackhook.Image(b)}"
)
_HINT = "track an int, float, str, bool, None, a list, a dict or a pydantic model"
# Trackers store steps as signed 64-bit integers (MLflow answers "Value out of range" beyond).
MAX_STEP = 2**63 - 1
_NOT_UNICODE = (
    "it holds a lone surrogate ({character!r} at index {index}), which is not valid Unicode and "
    "which no tracker can store; decode bytes with errors='replace' before tracking them"
)


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
    if step > MAX_STEP:
        raise InvalidValueError(
            "step", f"the step must be at most 2**63 - 1, which trackers store steps as, got {step}"
        )
    return step


def normalise_values(
    values: Mapping[str, object], *, files: list[str] | None = None
) -> dict[str, Value]:
    """Normalise every keyword of one ``track_this`` call, or raise before any is recorded.

    ``files``: ``trackhook.File`` and ``trackhook.Image`` values are allowed (at a key or in a
    dict) and kept as they are; their dotted keys are appended to ``files``.
    """
    if not values:
        return {}
    if only_plain_floats(values):
        return dict(values)
    clean: dict[str, Value] = {}
    may_collide = False  # only dotted keys and dicts can reach trackers as the same key
    for key, value in values.items():
        if not key:
            raise InvalidValueError(key, "keys must not be empty")
        if not key.isascii():
            _check_unicode(key, key)
        may_collide = may_collide or "." in key
        kind = type(value)
        if kind is int and not _FLOAT_RANGE_MIN <= value <= _FLOAT_RANGE_MAX:  # type: ignore[operator]
            raise InvalidValueError(key, _TOO_BIG)
        if kind in _PLAIN:
            if isinstance(value, str) and not value.isascii():
                _check_unicode(key, value)
            clean[key] = value
            continue
        try:
            clean[key] = normalise(key, value, files)
        except RecursionError:
            raise InvalidValueError(key, "it is nested too deeply, or contains itself") from None
        may_collide = may_collide or type(clean[key]) is dict
    if may_collide:
        _check_no_two_spellings(clean)
    return clean


def only_plain_floats(values: Mapping[str, object]) -> bool:
    """The common call, ``track_this(step=i, loss=l, acc=a)``, told apart at C speed: every value
    a float (or bool, None) and every key plain ASCII without a dot, so there is nothing to check
    one value at a time: no int's range, no text's Unicode, no two spellings of one key."""
    if not set(map(type, values.values())) <= _FLOATS:
        return False
    keys = "".join(values)
    return keys.isascii() and "." not in keys and "" not in values


_FLOATS = frozenset({float, bool, type(None)})


def _check_unicode(key: str, text: str) -> None:
    """Raise if ``text`` holds a lone surrogate (from ``os.fsdecode`` or a bad ``\\ud800``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        reason = _NOT_UNICODE.format(character=text[error.start], index=error.start)
        raise InvalidValueError(key, reason) from None


def _check_no_two_spellings(clean: Mapping[str, Value]) -> None:
    """Raise if two spellings of one call reach trackers as the same dotted key.

    ``a={"b": 1}`` and ``**{"a.b": 2}`` both become ``a.b`` at the same step: which one a tracker
    keeps would depend on the order of the call's keys, so neither is guessed.
    """
    seen: dict[str, str] = {}
    for key, value in clean.items():
        spelt = key if key.isidentifier() else repr(key)
        for dotted, spelling in _spellings(key, spelt, value):
            if dotted in seen:
                raise InvalidValueError(
                    dotted,
                    f"{seen[dotted]} and {spelling} both reach trackers as {dotted!r} at the same "
                    "step; track only one of them, or rename one",
                )
            seen[dotted] = spelling


def _spellings(key: str, spelling: str, value: Value) -> Iterator[tuple[str, str]]:
    """``(dotted_key, how the call spelt it)`` for every leaf, as ``flatten`` yields the keys."""
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            yield from _spellings(f"{key}.{inner_key}", f"{spelling}[{inner_key!r}]", inner)
    else:
        yield key, spelling


def normalise(key: str, value: object, files: list[str] | None = None) -> Value:
    """Return ``value`` in a JSON-storable form, or raise ``InvalidValueError`` naming ``key``.

    A file or an image is kept as it is, and its key appended to ``files``; without ``files``
    (in a list, in a line read back from the spool) it is refused.
    """
    kind = type(value)
    if kind is int and not _FLOAT_RANGE_MIN <= value <= _FLOAT_RANGE_MAX:  # type: ignore[operator]
        raise InvalidValueError(key, _TOO_BIG)
    if isinstance(value, str) and not value.isascii():
        _check_unicode(key, value)
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
    if isinstance(value, TrackedContent):
        if files is None:
            raise InvalidValueError(key, _FILES_IN_LISTS)
        files.append(key)
        return value
    if isinstance(value, Mapping):
        return _normalise_mapping(key, value, files)
    if isinstance(value, (list, tuple)):
        return [normalise(f"{key}[{index}]", item) for index, item in enumerate(value)]
    return _normalise_other(key, value)


def _normalise_other(key: str, value: object) -> Value:
    """A number of another library, a date, a path or a UUID; anything else is refused."""
    if isinstance(value, numbers.Integral):
        return normalise(key, int(value))
    if isinstance(value, numbers.Real):
        return float(value)
    if _is_scalar_of_an_array_library(value):
        return normalise(key, value.item())  # type: ignore[attr-defined]
    text = _as_text(value)
    if text is not None:
        return text
    raise InvalidValueError(key, _why_not(value))


def _is_scalar_of_an_array_library(value: object) -> bool:
    """A numpy scalar (``np.bool_``, which is no ``numbers.Integral``), a 0-d array or tensor.

    Their ``item()`` gives the Python bool, int or float they hold.
    """
    return getattr(value, "shape", None) == () and callable(getattr(value, "item", None))


def _as_text(value: object) -> str | None:
    """The one obvious string of a date, time, path or UUID; ``None`` for anything else.

    Dates and times become ISO 8601 (``2026-12-01T21:36:57+00:00``), as in the run log's own
    times; they are parameters, like every string. Imported here, not at module level: they are
    rare, and ``import trackhook`` stays light.
    """
    import datetime
    import uuid
    from pathlib import PurePath

    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (PurePath, uuid.UUID)):
        return str(value)
    return None


_CONVERSIONS = {
    "decimal.Decimal": "track float(value) for a metric, or str(value) to keep every digit",
    "datetime.timedelta": "track value.total_seconds() for a metric in seconds",
    "builtins.bytes": "track value.decode() for text, or value.hex()",
}
"""Values with more than one reasonable conversion: the user chooses, the error says how."""


def _why_not(value: object) -> str:
    kind = type(value)
    conversion = _CONVERSIONS.get(f"{kind.__module__}.{kind.__qualname__}")
    if conversion is not None:
        return f"a {kind.__name__} has no single obvious form in a tracker; {conversion}"
    tolist = getattr(value, "tolist", None)
    extra = " (for an array or tensor, track value.tolist() or a summary number)" if tolist else ""
    return f"a {kind.__name__} cannot be tracked; {_HINT}{extra}"


def _normalise_mapping(
    key: str, value: Mapping[Any, object], files: list[str] | None
) -> dict[str, Value]:
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
        if not name.isascii():
            _check_unicode(f"{key}.{name}", name)
        if name in clean:
            raise InvalidValueError(
                f"{key}.{name}", f"the keys {inner_key!r} and {name!r} both become {name!r}"
            )
        clean[name] = normalise(f"{key}.{name}", inner, files)
    return clean


def is_metric(value: object) -> bool:
    """Numbers are metrics; bools, although ints in Python, are parameters."""
    return type(value) is int or type(value) is float


def flatten(
    key: str, value: Value, files: AbstractSet[str] = frozenset()
) -> Iterator[tuple[str, Value]]:
    """Yield ``(dotted_key, leaf)`` for every leaf of a nested dict; other values as they are.

    The dicts at ``files`` (held files' records, see ``trackhook.held``) are leaves too.
    """
    if isinstance(value, dict) and key not in files:
        if not value:
            return
        for inner_key, inner in value.items():
            yield from flatten(f"{key}.{inner_key}", inner, files)
    else:
        yield key, value
