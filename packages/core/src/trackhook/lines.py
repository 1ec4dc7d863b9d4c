"""A spool line, encoded: ``{"t": time, "s": step, "v": values[, "p": 1][, "f": [keys]]}``.

The one place that turns a ``track_this`` call into the bytes of its spool line (its fields are
defined in ``trackhook.formats``). It is on the caller's thread for every call, so the common call,
floats under keyword names (``track_this(step=i, loss=l, acc=a)``), is written without the JSON
encoder, whose float conversion is a Python call per value: the bytes are the same as the
encoder's (``test_lines.py`` compares them), a third cheaper for one value.
"""

from __future__ import annotations

import json
from typing import Any

from trackhook.formats import SPOOL_AS_PARAMS, SPOOL_FILES, SPOOL_STEP, SPOOL_TIME, SPOOL_VALUES

__all__ = ["encode_line"]

_encode = json.JSONEncoder(separators=(",", ":")).encode
_PREFIX = f'{{"{SPOOL_TIME}":'
_STEP = f',"{SPOOL_STEP}":'
_VALUES = f',"{SPOOL_VALUES}":{{'


def encode_line(
    timestamp: float,
    step: int,
    values: dict[str, Any],
    *,
    as_params: bool = False,
    files: list[str] | None = None,
) -> bytes:
    """The spool line of one call, newline included (ASCII: the encoder escapes the rest)."""
    if not as_params and not files:
        body = _plain_floats(values)
        if body is not None:
            return f"{_PREFIX}{timestamp!r}{_STEP}{step}{_VALUES}{body}}}}}\n".encode("ascii")
    line: dict[str, Any] = {SPOOL_TIME: timestamp, SPOOL_STEP: step, SPOOL_VALUES: values}
    if as_params:
        line[SPOOL_AS_PARAMS] = 1
    if files:
        line[SPOOL_FILES] = files
    return (_encode(line) + "\n").encode("ascii")


def _plain_floats(values: dict[str, Any]) -> str | None:
    """``values`` as JSON object members when every key is an ASCII identifier (nothing to
    escape) and every value a finite float (its ``repr`` is then its JSON); otherwise ``None``."""
    keys = "".join(values)
    if not (keys.isascii() and keys.isidentifier()) or set(map(type, values.values())) != {float}:
        return None
    total = sum(values.values())
    if total - total != 0.0:  # a nan or an infinity (or a sum too big): the encoder spells them
        return None
    return ",".join(map('"{}":{!r}'.format, values, values.values()))
