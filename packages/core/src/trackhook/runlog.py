"""The run log: the typed record of every tracked value and its JSON face.

Inside, values are kept as ``key -> step -> value``, which is unambiguous. The JSON face is the
shape runnable's run log uses for ``user_defined_metrics``: a key tracked only at step 0 maps to
its value; any other key maps to ``{"<step>": value}``; nested dicts stay nested. Tracking the same
key at the same step again replaces the value.

The file is strict JSON: NaN and the infinities, which JSON cannot hold, are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from trackhook.store import SpoolEntry, iter_spool
from trackhook.values import Value

__all__ = [
    "CUMULATIVE_COUNTS",
    "MetricsRecord",
    "add_earlier_counts",
    "read_run_log",
    "record_from_spools",
    "start_time_of",
    "strict_json",
    "write_run_log",
]


class MetricsRecord:
    """Every value of a run, by key and step, safe to update from several threads."""

    def __init__(self) -> None:
        self._values: dict[str, dict[int, Value]] = {}
        self._lock = threading.Lock()

    def update(self, step: int, values: Mapping[str, Value]) -> None:
        with self._lock:
            for key, value in values.items():
                steps = self._values.get(key)
                if steps is None:
                    self._values[key] = {step: value}
                else:
                    steps[step] = value

    def merge_entries(self, entries: Iterable[SpoolEntry]) -> None:
        for entry in entries:
            self.update(entry.step, entry.values)

    def value_count(self) -> int:
        with self._lock:
            return sum(len(steps) for steps in self._values.values())

    def as_user_defined_metrics(self) -> dict[str, Any]:
        with self._lock:
            face: dict[str, Any] = {}
            for key, steps in self._values.items():
                if len(steps) == 1 and 0 in steps:
                    face[key] = steps[0]
                else:
                    face[key] = {str(step): steps[step] for step in sorted(steps)}
            return copy.deepcopy(face)  # the caller's to change: the record stays as tracked


def record_from_spools(paths: Iterable[Path]) -> MetricsRecord:
    """The record of every value in the given spool files, folded in the order it was tracked."""
    entries = [entry for path in paths for entry in iter_spool(path)]
    entries.sort(key=lambda entry: entry.timestamp)
    record = MetricsRecord()
    record.merge_entries(entries)
    return record


def strict_json(value: Any) -> Any:
    """Replace the floats that JSON cannot hold by their names."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {key: strict_json(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [strict_json(inner) for inner in value]
    return value


def write_run_log(path: Path, document: Mapping[str, Any]) -> None:
    """Write the run log atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = strict_json(dict(document))
    # Indented for people; past a size where people read it with `trackhook show` instead, compact,
    # because indenting moves json to its pure-Python encoder (seconds for a million values).
    indent = 4 if len(str(content.get("user_defined_metrics", ""))) < 200_000 else None
    text = json.dumps(content, indent=indent, allow_nan=False)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_run_log(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def start_time_of(document: Mapping[str, Any]) -> float | None:
    """The run log's ``start_time`` as a timestamp, or ``None`` when it has none readable."""
    try:
        return datetime.fromisoformat(str(document["start_time"])).timestamp()
    except (KeyError, ValueError):
        return None


CUMULATIVE_COUNTS = ("delivered", "retried", "renamed", "truncated", "skipped")
"""Delivery counts that add up across the sessions of a run (a resumed run, a sync)."""


def add_earlier_counts(
    report: Mapping[str, Any], earlier: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``report`` with the counts of earlier sessions of the same tracker added in."""
    combined = dict(report)
    if isinstance(earlier, Mapping):
        for name in CUMULATIVE_COUNTS:
            combined[name] = _count(combined.get(name)) + _count(earlier.get(name))
    return combined


def _count(value: object) -> int:
    """A count from a run log, 0 for anything that is not one (a hand-edited or older file)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
