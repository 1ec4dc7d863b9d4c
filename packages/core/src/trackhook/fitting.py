"""Turning spool entries into records that fit one tracker's declared limits.

A tracker declares ``TrackerLimits`` (which keys it can store, how long a param may be, how big a
batch): this module makes records that respect them, remembers which were renamed or truncated,
and which spool line each record came from, so that how far the tracker has received a spool file
can be said down to the value inside a line (``FittedLines.position``). It does no delivery.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackhook import formats
from trackhook.batching import batch_size
from trackhook.held import held_path
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.records import FileRecord, MetricRecord, ParamRecord, param_text
from trackhook.store import SpoolEntry, SpoolPosition, read_spool
from trackhook.values import flatten, is_metric

__all__ = ["READ_BYTES", "FittedLines", "Fitter"]

READ_BYTES = 64 * 1024
"""How much of a spool file is read at a time."""

Record = MetricRecord | ParamRecord | FileRecord
_NUMBERS = frozenset({int, float})


@dataclass
class FittedLines:
    """Records made from spool lines, and how many of them the tracker has handled."""

    path: Path
    start: SpoolPosition
    """Where ``entries`` start: the first entry's first ``start.values_done`` values are skipped."""
    entries: list[SpoolEntry] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    renamed: list[int] = field(default_factory=list)
    """The indexes of the records whose key was renamed (few: a list, not a flag per record)."""
    truncated: list[int] = field(default_factory=list)
    """The indexes of the params whose text was cut to the tracker's limit."""
    line_counts: list[int] = field(default_factory=list)  # records made up to each line's end
    line_offsets: list[int] = field(default_factory=list)  # the spool offset of each line's end
    sent: int = 0
    """Records handled (accepted, or refused for good), from the first on."""

    def position(self) -> SpoolPosition:
        """Where the spool is received up to, once the first ``sent`` records are handled."""
        lines_done = bisect.bisect_right(self.line_counts, self.sent)
        if lines_done == len(self.line_counts):
            return SpoolPosition(self.line_offsets[-1]) if lines_done else self.start
        if lines_done == 0:
            return SpoolPosition(self.start.offset, self.start.values_done + self.sent)
        done_in_line = self.sent - self.line_counts[lines_done - 1]
        return SpoolPosition(self.line_offsets[lines_done - 1], done_in_line)

    def count_flags(self, end: int) -> tuple[int, int]:
        """How many of the records from ``sent`` to ``end`` were (renamed, truncated)."""
        return _count_between(self.renamed, self.sent, end), _count_between(
            self.truncated, self.sent, end
        )

    def flag(self, *, renamed: bool, truncated: bool = False) -> None:
        """Flag the record about to be added (the next index of ``records``)."""
        if renamed:
            self.renamed.append(len(self.records))
        if truncated:
            self.truncated.append(len(self.records))


def _count_between(indexes: list[int], start: int, end: int) -> int:
    return bisect.bisect_left(indexes, end) - bisect.bisect_left(indexes, start)


class Fitter:
    """Makes records fit one tracker's limits, and tightens them when the tracker asks.

    ``on_renamed(key, stored, why)`` is called once per key the tracker cannot store as it is.
    ``store_root`` is the run log store's folder, where held files are.
    """

    def __init__(
        self,
        limits: TrackerLimits,
        on_renamed: Callable[[str, str, str | None], None],
        store_root: Path,
    ) -> None:
        self.limits = limits
        self._on_renamed = on_renamed
        self._store_root = store_root
        self._renamed_keys: set[str] = set()
        self._metric_keys: dict[str, str] = {}
        """Each metric key met, with the key the tracker stores it under."""
        self._ahead: tuple[Path | None, int, list[SpoolEntry]] = (None, 0, [])
        """The entries the last read parsed beyond its batch: (file, where they start, them)."""

    def read_batch(self, path: Path, start: SpoolPosition) -> FittedLines | None:
        """Records for the spool lines from ``start`` that fill one batch, or None if none.

        Reading on until the batch is full, rather than stopping at the end of a chunk of the
        spool, keeps requests full: a chunk rarely holds a whole number of batches.
        """
        until = batch_size(self.limits)
        fitted = FittedLines(path, start)
        offset = start.offset
        while len(fitted.records) < until:
            entries = self._read(path, offset)
            if not entries:
                break
            used = self.extend(fitted, entries, until)
            self._ahead = (path, entries[used - 1].end_offset, entries[used:])
            offset = fitted.line_offsets[-1]
        return fitted if fitted.entries else None

    def _read(self, path: Path, offset: int) -> list[SpoolEntry]:
        """The entries of ``path`` from ``offset``: those the last read parsed beyond its batch
        when it stopped there (a whole line never changes once written), else a new read."""
        ahead_path, ahead_offset, entries = self._ahead
        if ahead_path == path and ahead_offset == offset and entries:
            return entries
        return read_spool(path, offset, READ_BYTES)

    def extend(self, fitted: FittedLines, entries: list[SpoolEntry], until: int | None) -> int:
        """Add records for ``entries``, stopping at the first line end with ``until`` records;
        returns how many entries were used.

        The values of the line ``fitted.start`` points into that were handled already are left
        out: they are never offered again.
        """
        used = 0
        for entry in entries:
            used += 1
            skip = fitted.start.values_done if not fitted.entries else 0
            fitted.entries.append(entry)
            if skip or not self._add_metrics(entry, fitted):
                self._add_each(entry, fitted, skip)
            fitted.line_counts.append(len(fitted.records))
            fitted.line_offsets.append(entry.end_offset)
            if until is not None and len(fitted.records) >= until:
                break
        return used

    def _add_metrics(self, entry: SpoolEntry, into: FittedLines) -> bool:
        """Add the records of the common line, numbers under plain keys, in one loop; False,
        adding nothing, for any other line. Delivery runs on a thread of the caller's process:
        what it spends per value, the caller's loop waits for."""
        values = entry.values
        if entry.as_params or entry.files or not set(map(type, values.values())) <= _NUMBERS:
            return False
        step, timestamp = entry.step, entry.timestamp
        for key, value in values.items():
            into.records.append(self._metric_record(key, value, step, timestamp, into))
        return True

    def _add_each(self, entry: SpoolEntry, into: FittedLines, skip: int) -> None:
        """Add the records of ``entry`` value by value, after the first ``skip``."""
        for top_key, top_value in entry.values.items():
            for key, value in flatten(top_key, top_value, entry.files):
                if skip:
                    skip -= 1
                    continue
                into.records.append(self._record(entry, key, value, into))

    def _metric_record(
        self, key: str, value: float, step: int, timestamp: float, into: FittedLines
    ) -> MetricRecord:
        """The record of a metric, under the key the tracker stores it as: worked out once per
        key (and said once when renamed), remembered until the limits change."""
        stored = self._metric_keys.get(key)
        if stored is None:
            stored = self._metric_keys[key] = self.limits.storable_key(key)
            self._tell_renamed(key, stored)
        into.flag(renamed=stored != key)
        return MetricRecord(stored, value, step, timestamp)

    def tighten(self, fitted: FittedLines, demand: TighterLimitsRequired) -> None:
        """Remake ``fitted``'s records with the tighter limits the tracker asked for.

        Raises ``demand`` again when it asks for nothing tighter: retrying would loop forever.
        """
        tighter = self.limits.tightened(**demand.changes)
        if tighter == self.limits:
            raise demand
        self.limits = tighter
        self._metric_keys.clear()
        rebuilt = FittedLines(fitted.path, fitted.start)
        self.extend(rebuilt, fitted.entries, until=None)
        fitted.records, fitted.renamed = rebuilt.records, rebuilt.renamed
        fitted.truncated = rebuilt.truncated

    def _record(self, entry: SpoolEntry, key: str, value: object, into: FittedLines) -> Record:
        limits = self.limits
        if key in entry.files:
            return self._file_record(entry, key, value, into)
        if is_metric(value) and not entry.as_params:
            return self._metric_record(key, value, entry.step, entry.timestamp, into)  # type: ignore[arg-type]
        param_key = limits.param_key.format(key=key, step=entry.step)
        stored = limits.storable_key(param_key)
        self._tell_renamed(param_key, stored)
        text = param_text(value)  # type: ignore[arg-type]
        short = limits.fit_param_text(text)
        into.flag(renamed=stored != param_key, truncated=short is not None)
        if short is None:
            return ParamRecord(stored, value, entry.step, entry.timestamp)  # type: ignore[arg-type]
        return ParamRecord(stored, short, entry.step, entry.timestamp, full_value=text)

    def _file_record(self, entry: SpoolEntry, key: str, held: Any, into: FittedLines) -> FileRecord:
        stored = self.limits.storable_key(key)
        into.flag(renamed=stored != key)
        self._tell_renamed(key, stored)
        return FileRecord(
            key=stored,
            step=entry.step,
            path=held_path(self._store_root, held),
            name=held[formats.FILE_NAME],
            kind=held[formats.FILE_KIND],
            sha256=held[formats.FILE_SHA256],
            size=held[formats.FILE_SIZE],
            timestamp=entry.timestamp,
        )

    def _tell_renamed(self, key: str, stored: str) -> None:
        if stored != key and key not in self._renamed_keys:
            self._renamed_keys.add(key)
            self._on_renamed(key, stored, self.limits.why_unstorable(key))
