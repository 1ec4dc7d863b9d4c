"""Reading the run log store for the commands that show runs: ``runs``, ``show`` and ``plot``.

A run's values are read from its spool when the spool is there, because the spool says exactly at
which step each value was tracked; the run log's ``user_defined_metrics`` (runnable's shape, where a
nested dict at step 0 looks like a key tracked at several steps) is the fallback.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from trackhook import formats
from trackhook.cli._curves import Curve, Thinning
from trackhook.cli._errors import CommandError

__all__ = ["TREND_WIDTH", "KeySummary", "RunView", "find_run", "load_runs", "store_of"]

_FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def store_of(config: str | None) -> Any:
    """The ``RunStore`` that the configuration names."""
    from trackhook.config import load_config
    from trackhook.store import RunStore

    return RunStore(load_config(config).config.run_log_store)


@dataclass
class KeySummary:
    """One key of a run (nested dicts flattened, as trackers receive them) in a few figures:
    what ``trackhook show`` prints, gathered in one pass over the key's values."""

    key: str
    steps: int = 0
    first_step: int = 0
    last_step: int = 0
    last: Any = None
    numeric: bool = True
    """Every value is a number."""
    tracked_as_param: bool = False
    """Tracked with ``track_params``: trackers received it as a parameter, numbers included."""
    low: float = math.nan
    high: float = math.nan
    """The lowest and highest values, NaN left out (infinities kept)."""
    trend: list[float] = field(default_factory=list)
    """The values in step order, averaged into at most ``TREND_WIDTH`` buckets."""


TREND_WIDTH = 40


@dataclass
class RunView:
    """One run as its run log (and spool) describe it.

    ``document`` is the run log without its values, which are read a key at a time when needed:
    a run of millions of values is shown in bounded memory.
    """

    document: dict[str, Any]
    path: Path
    spools: list[Path] = field(default_factory=list)
    loaded_metrics: dict[str, Any] | None = None
    """The run log's values, when it had to be read whole (written by an older trackhook)."""
    unreadable: str | None = None
    """Why the run log cannot be read (a newer trackhook wrote it): ``document`` is then empty."""
    param_keys: set[str] = field(default_factory=set)
    """The keys tracked with ``track_params``: from the run log's ``param_keys``, and from the
    spool's lines once the values are read from it."""

    def __post_init__(self) -> None:
        self.param_keys.update(map(str, self.document.get(formats.PARAM_KEYS) or []))

    @property
    def run_id(self) -> str:
        return str(self.document.get(formats.RUN_ID, self.path.stem))

    @property
    def tag(self) -> str:
        return str(self.document.get(formats.TAG) or "")

    @property
    def status(self) -> str:
        return str(self.document.get(formats.STATUS) or "?")

    @property
    def started(self) -> datetime | None:
        return _time(self.document.get(formats.START_TIME))

    @property
    def ended(self) -> datetime | None:
        return _time(self.document.get(formats.END_TIME))

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; to now while the run is open."""
        if self.started is None:
            return None
        end = self.ended.timestamp() if self.ended is not None else time.time()
        return max(end - self.started.timestamp(), 0.0)

    @property
    def trackers(self) -> list[dict[str, Any]]:
        return [item for item in self.document.get(formats.TRACKERS) or [] if item]

    @property
    def undelivered(self) -> int:
        return sum(
            int((item.get(formats.TRACKER_DELIVERY) or {}).get(formats.UNDELIVERED) or 0)
            for item in self.trackers
        )

    @property
    def value_count(self) -> int:
        """How many (key, step) values the run holds, nested dicts counted by their leaves.

        That is how trackers receive them, so a run whose values were each tracked once shows the
        count its trackers report as delivered. Read from the run log alone (its ``value_count``,
        or its values when an older trackhook wrote it): listing runs never reads their spools.
        """
        from trackhook.values import flatten

        recorded = self.document.get(formats.VALUE_COUNT)
        if type(recorded) is int:
            return recorded
        count = 0
        for key, value in self._run_log_values().items():
            at_steps = value.values() if _looks_stepped(value) else [value]
            count += sum(1 for inner in at_steps for _ in flatten(key, inner))
        return count

    def write_json(self, out: IO[str]) -> None:
        """The run log as JSON, values included: its file as it is, a piece at a time (or, when
        an older trackhook wrote it, indented again)."""
        from trackhook.runlog import strict_json

        if self.loaded_metrics is None:
            with open(self.path, encoding="utf-8") as file:
                shutil.copyfileobj(file, out)
            return
        document = {**self.document, formats.METRICS: self.loaded_metrics}
        out.write(json.dumps(strict_json(document), indent=4) + "\n")

    def summaries(self) -> Iterator[KeySummary]:
        """Each key (nested dicts flattened, files kept whole), in the order first tracked,
        summed up."""
        from trackhook.held import leaves_of as flatten

        for key, steps in self._keys():
            counted: dict[str, int] = {}
            for _, value in steps():
                for dotted, _leaf in flatten(key, value):
                    counted[dotted] = counted.get(dotted, 0) + 1
            summaries = {dotted: _Summing(dotted, count) for dotted, count in counted.items()}
            for step, value in steps():
                for dotted, leaf in flatten(key, value):
                    summaries[dotted].add(step, leaf)
            for summing in summaries.values():
                summing.result.tracked_as_param = key in self.param_keys
                yield summing.summary()

    @property
    def values(self) -> dict[str, dict[int, Any]]:
        """``dotted key -> step -> value``, every value in memory: ``summaries`` reads less."""
        from trackhook.held import leaves_of as flatten

        stepped: dict[str, dict[int, Any]] = {}
        for key, steps in self._keys():
            for step, value in steps():
                for dotted, leaf in flatten(key, value):
                    stepped.setdefault(dotted, {})[step] = leaf
        return stepped

    @property
    def unreadable_lines(self) -> int:
        """Spool lines that hold no value ``track_this`` wrote (torn, foreign): skipped."""
        return sum(_unreadable_in(path) for path in self.spools)

    def _keys(self) -> Iterator[tuple[str, Callable[[], Iterator[tuple[int, Any]]]]]:
        """Each key with a way to read its ``(step, value)`` in step order (more than once).

        From the spool when it is there, because the spool says exactly at which step each value
        was tracked; else from the run log.
        """
        if not self.spools:
            yield from _keys_of(self._run_log_values())
            return
        from trackhook.index import ValueIndex

        with tempfile.TemporaryDirectory(prefix="trackhook-show-") as folder:
            with ValueIndex(Path(folder)) as index:
                index.add(self.spools)
                self.param_keys.update(index.param_keys())
                yield from index.readers()

    def _run_log_values(self) -> dict[str, Any]:
        if self.loaded_metrics is None:
            from trackhook.runlog import read_run_log

            # Values of a run whose spool is gone: the run log, read whole.
            self.loaded_metrics = read_run_log(self.path).get(formats.METRICS) or {}
        return self.loaded_metrics

    def curves(self, keys: Collection[str] = ()) -> dict[str, Curve]:
        """The metrics (keys whose every value is a number), or those of ``keys`` that are, each
        thinned to at most ``CURVE_POINTS`` points: bounded memory, however long the run.

        Two passes over each key: the first counts its values and checks they are numbers, the
        second thins them.
        """
        from trackhook.held import leaves_of as flatten

        curves: dict[str, Curve] = {}
        for key, steps in self._keys():
            counted: dict[str, int] = {}
            numeric: set[str] = set()
            for _, value in steps():
                for dotted, leaf in flatten(key, value):
                    if dotted not in counted:
                        numeric.add(dotted)
                    counted[dotted] = counted.get(dotted, 0) + 1
                    if type(leaf) not in (int, float):
                        numeric.discard(dotted)
            drawn = {
                dotted: Thinning(dotted, counted[dotted])
                for dotted in counted
                if dotted in numeric and (not keys or dotted in keys)
            }
            if not drawn:
                continue
            for step, value in steps():
                for dotted, leaf in flatten(key, value):
                    if dotted in drawn:
                        drawn[dotted].add(step, leaf)
            curves.update((dotted, thinning.curve) for dotted, thinning in drawn.items())
        return curves


class _Summing:
    """A ``KeySummary`` being gathered from the values of one key in step order."""

    def __init__(self, key: str, count: int) -> None:
        self.result = KeySummary(key)
        self._count = count
        self._bucket: list[float] = []
        self._buckets_done = 0

    def add(self, step: int, value: Any) -> None:
        result = self.result
        if result.steps == 0:
            result.first_step = step
        result.steps += 1
        result.last_step, result.last = step, value
        if type(value) not in (int, float):
            result.numeric = False
            return
        if not math.isnan(value):
            result.low = value if math.isnan(result.low) else min(result.low, value)
            result.high = value if math.isnan(result.high) else max(result.high, value)
        self._add_to_trend(float(value))

    def _add_to_trend(self, value: float) -> None:
        """Bucket ``i`` holds values ``i * n // width`` to ``(i + 1) * n // width``, as
        ``sparkline`` averages a list."""
        if self._count <= TREND_WIDTH:
            self.result.trend.append(value)
            return
        self._bucket.append(value)
        end = (self._buckets_done + 1) * self._count // TREND_WIDTH
        if self.result.steps >= end:
            finite = [inner for inner in self._bucket if math.isfinite(inner)]
            self.result.trend.append(sum(finite) / len(finite) if finite else math.nan)
            self._bucket = []
            self._buckets_done += 1

    def summary(self) -> KeySummary:
        return self.result


def _unreadable_in(path: Path) -> int:
    """The unreadable lines of one spool file, read a small piece at a time."""
    from trackhook.store import read_spool

    count, offset = 0, 0
    while entries := read_spool(path, offset, _PIECE):
        count += sum(entry.unreadable for entry in entries)
        offset = entries[-1].end_offset
    return count


_PIECE = 1 << 16


def _keys_of(
    metrics: dict[str, Any],
) -> Iterator[tuple[str, Callable[[], Iterator[tuple[int, Any]]]]]:
    """The keys of a run log's values (runnable's shape, where a nested dict at step 0 looks
    like a key tracked at several steps) with their ``(step, value)``."""
    for key, value in metrics.items():
        if _looks_stepped(value):
            rows = sorted((int(step), _number(inner)) for step, inner in value.items())
        else:
            rows = [(0, _number(value))]
        yield key, functools.partial(iter, rows)


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
    """Every run with a run log in ``store``, newest first.

    A run log that a newer trackhook wrote is listed as ``unreadable``, with the reason.
    """
    runs = []
    for run_id in store.run_ids():
        path = store.run_log_path(run_id)
        if path.is_file():
            try:
                runs.append(_view(path, store.spool_files(run_id)))
            except formats.FormatTooNewError as error:
                runs.append(RunView({}, path, unreadable=str(error)))
            except ValueError:
                continue  # being replaced right now, or not a run log: not worth failing a listing
    epoch = datetime.fromtimestamp(0).astimezone()
    runs.sort(key=lambda run: (run.started or epoch).timestamp(), reverse=True)
    return runs


def find_run(store: Any, run_id: str) -> RunView:
    """The run ``run_id``, or an error that names the closest ids in the store."""
    path = store.run_log_path(run_id)
    if path.is_file():
        try:
            return _view(path, store.spool_files(run_id))
        except formats.FormatTooNewError as error:
            raise CommandError(str(error), f"a newer trackhook reads it: {error.install}") from None
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


def _view(path: Path, spools: list[Path]) -> RunView:
    """The run log at ``path`` without its values (unless an older trackhook wrote it)."""
    from trackhook.runlog import read_run_log_header

    read = read_run_log_header(path)
    return RunView(read.header, path, spools, read.loaded_metrics)
