"""Reading the run log store for the commands that show runs: ``runs``, ``show`` and ``plot``.

A run's values are read from its spool when the spool is there, because the spool says exactly at
which step each value was tracked; the run log's ``user_defined_metrics`` (runnable's shape, where a
nested dict at step 0 looks like a key tracked at several steps) is the fallback.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.cli._errors import CommandError

if TYPE_CHECKING:
    from trackhook.store import SpoolEntry

__all__ = ["RunView", "find_run", "load_runs", "store_of"]

_FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def store_of(config: str | None) -> Any:
    """The ``RunStore`` that the configuration names."""
    from trackhook.config import load_config
    from trackhook.store import RunStore

    return RunStore(load_config(config).config.run_log_store)


@dataclass
class RunView:
    """One run as its run log (and spool) describe it."""

    document: dict[str, Any]
    path: Path
    spools: list[Path] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.document.get("run_id", self.path.stem))

    @property
    def tag(self) -> str:
        return str(self.document.get("tag") or "")

    @property
    def status(self) -> str:
        return str(self.document.get("status") or "?")

    @property
    def started(self) -> datetime | None:
        return _time(self.document.get("start_time"))

    @property
    def ended(self) -> datetime | None:
        return _time(self.document.get("end_time"))

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; to now while the run is open."""
        if self.started is None:
            return None
        end = self.ended.timestamp() if self.ended is not None else time.time()
        return max(end - self.started.timestamp(), 0.0)

    @property
    def trackers(self) -> list[dict[str, Any]]:
        return [item for item in self.document.get("experiment_trackers") or [] if item]

    @property
    def undelivered(self) -> int:
        return sum(
            int((item.get("delivery") or {}).get("undelivered") or 0) for item in self.trackers
        )

    @property
    def value_count(self) -> int:
        """How many (key, step) values the run holds, nested dicts counted by their leaves.

        That is how trackers receive them, so a run whose values were each tracked once shows the
        count its trackers report as delivered. Counted from the run log alone: listing runs
        never reads their spools.
        """
        from trackhook.values import flatten

        count = 0
        for key, value in (self.document.get("user_defined_metrics") or {}).items():
            at_steps = value.values() if _looks_stepped(value) else [value]
            count += sum(1 for inner in at_steps for _ in flatten(key, inner))
        return count

    @cached_property
    def values(self) -> dict[str, dict[int, Any]]:
        """``dotted key -> step -> value``, nested dicts flattened as trackers receive them."""
        from trackhook.values import flatten

        stepped: dict[str, dict[int, Any]] = {}
        for step, key, value in self._tracked():
            for dotted, leaf in flatten(key, value):
                stepped.setdefault(dotted, {})[step] = leaf
        return {key: dict(sorted(steps.items())) for key, steps in stepped.items()}

    @property
    def unreadable_lines(self) -> int:
        """Spool lines that hold no value ``track_this`` wrote (torn, foreign): skipped."""
        return sum(entry.unreadable for entry in self._spool_entries)

    @cached_property
    def _spool_entries(self) -> list[SpoolEntry]:
        """Every line of the run's spools, in the order the values were tracked."""
        from trackhook.store import iter_spool

        return sorted(
            (entry for path in self.spools for entry in iter_spool(path)),
            key=lambda entry: entry.timestamp,
        )

    def _tracked(self) -> list[tuple[int, str, Any]]:
        if self.spools:
            entries = self._spool_entries
            return [(e.step, key, value) for e in entries for key, value in e.values.items()]
        tracked = []
        for key, value in (self.document.get("user_defined_metrics") or {}).items():
            if _looks_stepped(value):
                tracked += [(int(step), key, _number(inner)) for step, inner in value.items()]
            else:
                tracked.append((0, key, _number(value)))
        return tracked

    @property
    def metrics(self) -> dict[str, dict[int, float]]:
        """The keys whose every value is a number: ``key -> step -> value``."""
        return {
            key: steps
            for key, steps in self.values.items()
            if all(type(value) in (int, float) for value in steps.values())
        }

    @property
    def params(self) -> dict[str, dict[int, Any]]:
        """Every other key: ``key -> step -> value``."""
        metrics = self.metrics
        return {key: steps for key, steps in self.values.items() if key not in metrics}


def _looks_stepped(value: object) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(key, str) and key.isdigit() for key in value)
    )


def _number(value: Any) -> Any:
    """The run log writes NaN and the infinities as names; a reader gets the floats back."""
    if isinstance(value, str) and value in _FLOAT_NAMES:
        return _FLOAT_NAMES[value]
    if isinstance(value, dict):
        return {key: _number(inner) for key, inner in value.items()}
    return value


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def load_runs(store: Any) -> list[RunView]:
    """Every run with a run log in ``store``, newest first."""
    from trackhook.runlog import read_run_log

    runs = []
    for run_id in store.run_ids():
        path = store.run_log_path(run_id)
        if path.is_file():
            try:
                document = read_run_log(path)
            except ValueError:
                continue  # being replaced right now, or not a run log: not worth failing a listing
            runs.append(RunView(document, path, store.spool_files(run_id)))
    epoch = datetime.fromtimestamp(0).astimezone()
    runs.sort(key=lambda run: (run.started or epoch).timestamp(), reverse=True)
    return runs


def find_run(store: Any, run_id: str) -> RunView:
    """The run ``run_id``, or an error that names the closest ids in the store."""
    from trackhook.runlog import read_run_log

    path = store.run_log_path(run_id)
    if path.is_file():
        return RunView(read_run_log(path), path, store.spool_files(run_id))
    import difflib

    known = store.run_ids()
    close = difflib.get_close_matches(run_id, known, n=3)
    hint = (
        f"did you mean {' or '.join(close)}?"
        if close
        else "`trackhook runs` lists the runs (of the store named by the configuration, "
        f"{store.root})"
    )
    raise CommandError(f"no run {run_id!r} in the run log store {str(store.root)!r}", hint)
