"""Values tracked through ``TRACKHOOK_TRACK_*`` environment variables (shell tasks, launchers).

``TRACKHOOK_TRACK_<key>=<value>`` tracks ``<key>`` at step 0, and
``TRACKHOOK_TRACK_<key>_STEP_<n>`` at step ``n``: only a final ``_STEP_`` followed by digits is a
step. Values arrive as strings and are converted: an integer string becomes an int, a decimal or
exponent string a float, a JSON object or array its parsed value, anything else stays a string.
There are no booleans: ``true`` stays ``"true"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from trackhook.values import Value

__all__ = ["TRACK_PREFIX", "convert", "tracked_variables"]

TRACK_PREFIX = "TRACKHOOK_TRACK_"
_STEP_SUFFIX = re.compile(r"^(?P<key>.+)_STEP_(?P<step>[0-9]+)$", re.DOTALL)
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(
    r"^[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+|"
    r"\.[0-9]+[eE][+-]?[0-9]+)$"
)


def convert(text: str) -> Value:
    """Convert an environment variable's string to the value it stands for."""
    stripped = text.strip()
    try:
        if _INT.match(stripped):
            return int(stripped)
        if _FLOAT.match(stripped):
            return float(stripped)
    except ValueError:  # more digits than Python converts: keep the text
        return text
    if stripped[:1] in ("{", "["):
        try:
            parsed: Value = json.loads(stripped)
        except ValueError:
            return text
        return parsed
    return text


def tracked_variables(environ: Mapping[str, str]) -> dict[int, dict[str, Value]]:
    """Return the tracked variables of ``environ`` grouped by step, in the mapping's order."""
    by_step: dict[int, dict[str, Value]] = {}
    for name, text in environ.items():
        if not name.startswith(TRACK_PREFIX) or len(name) == len(TRACK_PREFIX):
            continue
        key = name[len(TRACK_PREFIX) :]
        step = 0
        match = _STEP_SUFFIX.match(key)
        if match:
            key, step = match["key"], int(match["step"])
        by_step.setdefault(step, {})[key] = convert(text)
    return by_step
