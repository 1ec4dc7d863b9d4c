"""A spool line, encoded: ``{"t": time, "s": step, "v": values[, "p": 1][, "f": [keys]]}``.

The one place that turns a ``track_this`` call into the bytes of its spool line (its fields are
defined in ``trackhook.formats``). It is on the caller's thread for every call, so the common call,
floats under keyword names (``track_this(step=i, loss=l, acc=a)``), needs no normalising and is
written without the JSON encoder, whose float conversion is a Python call per value: its values
are the dict's ``repr`` (JSON but for the quotes and a space after each ``:`` and ``,``), which
reads back as the encoder's line would (``test_lines.py`` compares them), at half the cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trackhook.formats import SPOOL_AS_PARAMS, SPOOL_FILES, SPOOL_STEP, SPOOL_TIME, SPOOL_VALUES

__all__ = ["encode_line", "plain_float_line"]

_encode = json.JSONEncoder(separators=(",", ":")).encode
_PREFIX = f'{{"{SPOOL_TIME}":'
_STEP = f',"{SPOOL_STEP}":'
_VALUES = f',"{SPOOL_VALUES}":'
_FLOAT = {float}


def plain_float_line(timestamp: float, step: int, values: Mapping[str, Any]) -> bytes | None:
    """The line of a call with nothing to normalise, or ``None`` for any other call.

    Nothing to normalise: every key non-empty and of ASCII letters, digits and underscores
    (nothing for an encoder to escape, no dot that could make it another key's spelling) and every
    value a finite ``float`` (whose ``repr`` is its JSON).
    """
    if type(values) is not dict:  # a subclass's or another mapping's repr is not the dict's
        return None
    keys = "".join(values)
    if (
        not (keys.isascii() and keys.isidentifier())
        or "" in values
        or set(map(type, values.values())) != _FLOAT
    ):
        return None
    total = sum(values.values())
    if total - total != 0.0:  # a nan or an infinity (or a sum too big): the encoder spells them
        return None
    # such a dict's repr is its JSON but for the quotes, which no key holds
    line = f"{_PREFIX}{timestamp!r}{_STEP}{step}{_VALUES}{values!r}}}\n"
    return line.replace("'", '"').encode("ascii")


def encode_line(
    timestamp: float,
    step: int,
    values: dict[str, Any],
    *,
    as_params: bool = False,
    files: list[str] | None = None,
) -> bytes:
    """The line of one call of normalised ``values``, newline included (ASCII: the encoder
    escapes the rest)."""
    if not as_params and not files:
        line = plain_float_line(timestamp, step, values)
        if line is not None:
            return line
    fields: dict[str, Any] = {SPOOL_TIME: timestamp, SPOOL_STEP: step, SPOOL_VALUES: values}
    if as_params:
        fields[SPOOL_AS_PARAMS] = 1
    if files:
        fields[SPOOL_FILES] = files
    return (_encode(fields) + "\n").encode("ascii")
