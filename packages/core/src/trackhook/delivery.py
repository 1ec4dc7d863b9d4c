"""Delivery: one thread per tracker moves a run's spooled values into that tracker.

The caller's thread only appends to the spool (see ``store.SpoolWriter``); everything that can be
slow or fail happens here, per tracker, so that a slow or dead tracker never holds back the caller
or another tracker. Each pass of a worker:

1. opens the run in its tracker (once per process, serialised across processes by a file lock);
2. flushes this process's spool and reads the lines its tracker has not received yet;
3. turns them into records that fit the tracker's declared ``TrackerLimits`` (param keys, renamed
   keys, truncated params, batch sizes) and hands them over with ``trackhook_log_batch`` (or the
   per-value hooks);
4. records, after each accepted batch, how far the tracker has received each spool file, so that a
   retry or a later ``trackhook sync`` never sends a value twice.

A failing hook is retried with exponential backoff while the run goes on; the values wait in the
spool, not in memory. When the run finishes, the worker delivers what is left within a bounded time,
then closes the run in its tracker, or reports what it could not deliver.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.errors import TrackhookWarning, warn_in_background
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.records import MetricRecord, ParamRecord, RunInfo, Status, param_text
from trackhook.redaction import redact, redact_text
from trackhook.runlog import add_earlier_counts
from trackhook.store import RunStore, SpoolEntry, SpoolWriter, iter_spool, read_spool
from trackhook.values import flatten, is_metric

if TYPE_CHECKING:
    from trackhook.config import DeliverySettings
    from trackhook.trackers import LoadedTracker

__all__ = [
    "DeliveryReport",
    "TrackerWorker",
    "TrackhookWarning",
    "count_values",
    "wait_for_workers",
]

_DEFAULT_BATCH = 1000
_READ_BYTES = 64 * 1024
_PER_VALUE_SAVE_INTERVAL = 0.5


@dataclass
class DeliveryReport:
    """What happened to one tracker's values: recorded in the run log at close."""

    delivered: int = 0
    retried: int = 0
    renamed: int = 0
    truncated: int = 0
    undelivered: int = 0
    skipped: int = 0
    """Values of a kind the tracker has no hook for (metrics, or params)."""
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "renamed": self.renamed,
            "truncated": self.truncated,
            "undelivered": self.undelivered,
            "skipped": self.skipped,
            "last_error": self.last_error,
        }


@dataclass
class _Prepared:
    """Records made from spool lines, and how far into them the tracker has accepted."""

    path: Path
    entries: list[SpoolEntry]
    saved: int
    """The position on disk: where ``entries`` start, or how far they have been accepted."""
    records: list[MetricRecord | ParamRecord] = field(default_factory=list)
    flags: list[tuple[bool, bool]] = field(default_factory=list)  # (renamed, truncated)
    line_counts: list[int] = field(default_factory=list)  # records made up to each line's end
    line_offsets: list[int] = field(default_factory=list)  # the spool offset of each line's end
    sent: int = 0


_TRIES_AT_EXIT = 2
"""Failed passes after which a worker gives up at interpreter exit (see ``finish``)."""
_GRACE_AFTER_TIMEOUT = 5.0
"""Seconds a worker gets beyond its timeout to return from the hook it is in."""


def wait_for_workers(workers: Iterable[TrackerWorker], timeout: float) -> None:
    """Wait for finishing workers together; report those still stuck in a hook after ``timeout``."""
    deadline = time.monotonic() + timeout + _GRACE_AFTER_TIMEOUT
    for worker in workers:
        worker.join(max(deadline - time.monotonic(), 0.0))
        if worker.is_alive():
            worker.give_up()


def count_values(entries: Iterable[SpoolEntry]) -> int:
    """How many values a tracker receives for ``entries``: nested dicts count by their leaves."""
    return sum(
        1 for entry in entries for key, value in entry.values.items() for _ in flatten(key, value)
    )


class TrackerWorker(threading.Thread):
    """Delivers one run to one tracker, in the background."""

    def __init__(
        self,
        tracker: LoadedTracker,
        run: RunInfo,
        store: RunStore,
        settings: DeliverySettings,
        *,
        own_spool: SpoolWriter | None,
        on_fatal: Callable[[str, BaseException], None] | None = None,
        on_opened: Callable[[], None] | None = None,
        open_eagerly: bool = True,
    ) -> None:
        super().__init__(name=f"trackhook-{tracker.name}", daemon=True)
        self.tracker = tracker
        self.run_info = run
        self.store = store
        self.settings = settings
        self.report = DeliveryReport()
        self.facts: dict[str, str] = {}
        self.opened = threading.Event()
        self.fatal: BaseException | None = None
        self.busy_spools: list[Path] = []
        self._own = own_spool
        self._open_eagerly = open_eagerly
        self._on_fatal = on_fatal
        self._on_opened = on_opened
        self._positions = store.positions(run.run_id, tracker.name)
        if open_eagerly:
            self._positions.reopen()
        self._limits: TrackerLimits = tracker.limits
        self._prepared: _Prepared | None = None
        self._renamed_keys: set[str] = set()
        self._warned = False
        self._last_save = 0.0
        self._wake = threading.Event()
        self._finish = threading.Event()
        self._finish_status: Status | None = None
        self._at_exit = False
        self._deadline = float("inf")
        self._done = False
        self._report_lock = threading.Lock()
        self._reported = False

    # -- control, from other threads -------------------------------------------------------------

    def finish(self, status: Status | None, timeout: float, *, at_exit: bool = False) -> None:
        """Deliver what is left within ``timeout`` seconds, then close with ``status`` (if any).

        ``at_exit``: the interpreter is exiting, when a tracker library may no longer start
        threads or register exit handlers. A failure is then retried once, not until
        ``timeout``: what is left stays in the spool for ``trackhook sync``, and the user's
        process is not held up by a tracker that cannot work any more.
        """
        self._finish_status = status
        self._at_exit = at_exit
        self._deadline = time.monotonic() + timeout
        self._finish.set()
        self._wake.set()

    # -- the thread --------------------------------------------------------------------------------

    def run(self) -> None:
        self._loop()
        if self._own is not None:
            self._own.flush()
        self._final_report()

    def run_log_entry(self, earlier_delivery: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This tracker in the run log: settings, the tracker's facts, and the delivery counts
        (with those of earlier sessions of the same run added in)."""
        return {
            "name": self.tracker.name,
            "type": self.tracker.settings.type,
            "on_error": self.tracker.settings.on_error,
            "config": self.tracker.recorded_config,
            "run": redact(self.facts),
            "delivery": add_earlier_counts(self.report.as_dict(), earlier_delivery),
        }

    def closed_in_tracker(self) -> bool:
        """Whether the run has been closed in this tracker (by this process or another)."""
        return self._positions.closed_status() is not None

    def give_up(self) -> None:
        """Report now, from the closing thread, while this thread is still stuck in a hook.

        A hook that never returns (a server that accepts the connection and never answers, a
        client library blocked at interpreter exit) must not make the run log claim that
        everything was delivered: what the tracker has not acknowledged is counted and reported
        as undelivered, and stays in the spool for ``trackhook sync``.
        """
        if self.report.last_error is None:
            self.report.last_error = "a hook of the tracker did not return within flush_timeout"
        self._final_report()

    def _final_report(self) -> None:
        # Under the lock from start to end: whichever of this thread and the closing thread comes
        # second returns only once the counts are in the report that the run log records.
        with self._report_lock:
            if self._reported:
                return
            self.report.undelivered = self._undelivered()
            self._reported = True
        if self.fatal is not None:
            return
        run_id = self.run_info.run_id
        last_error = f" (last error: {self.report.last_error})" if self.report.last_error else ""
        if self.report.undelivered:
            self._warn(
                f"tracker {self.tracker.name!r} could not deliver {self.report.undelivered} "
                f"values of run {run_id!r}{last_error}; they are kept in "
                f"{self.store.spool_dir(run_id)}; deliver them with: trackhook sync {run_id}"
            )
        elif self._finish_status is not None and not self.closed_in_tracker():
            self._warn(
                f"tracker {self.tracker.name!r} has not closed run {run_id!r}{last_error}; "
                f"close it with: trackhook sync {run_id}"
            )

    def _loop(self) -> None:
        backoff = 0.0
        failures_at_exit = 0
        while True:
            finishing = self._finish.is_set()
            try:
                self._pass(finishing)
                backoff = 0.0
            except Exception as error:  # a tracker's failure of any kind is retried, not propagated
                self.report.last_error = redact_text(f"{type(error).__name__}: {error}")
                if self.tracker.settings.on_error == "raise":
                    self.fatal = error
                    if self._on_fatal is not None:
                        self._on_fatal(self.tracker.name, error)
                    return
                self.report.retried += 1
                if finishing and self._at_exit:
                    failures_at_exit += 1
                    if failures_at_exit == _TRIES_AT_EXIT:
                        return
                if not self._warned:
                    self._warned = True
                    self._warn(
                        f"tracker {self.tracker.name!r} failed ({self.report.last_error}); "
                        "the run goes on, its values are kept and retried in the background"
                    )
                backoff = min(max(backoff * 2, 0.25), self.settings.max_backoff)
            if self._done:
                return
            remaining = self._deadline - time.monotonic()
            if finishing and remaining <= 0:
                return
            wait = backoff or self.settings.interval
            if finishing:
                wait = min(backoff, remaining)
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _ensure_open(self) -> None:
        if not self.opened.is_set():
            with self._positions.opening():
                self.facts = self.tracker.hooks.open_run(self.run_info)
            self.opened.set()
            if self._on_opened is not None:
                self._on_opened()

    def _pass(self, finishing: bool) -> None:
        """Deliver every spool file of the run that no other process is delivering right now.

        Other processes of the run (a multiprocessing pool, a shell task running Python) only
        spool; the run's owner delivers their files too. A file is claimed with a lock for the
        time of its delivery, so ``trackhook sync`` or another owner never sends it twice.
        """
        if self._own is not None:
            self._own.flush()  # before opening, which may fail: what is tracked is then on disk
        if self._open_eagerly and not self.opened.is_set():
            self._ensure_open()
            if self._own is not None:
                self._own.flush()
        receives = self.tracker.hooks.receives_values
        paths = self.store.spool_files(self.run_info.run_id) if receives else []
        if self._prepared is not None and self._prepared.path in paths:
            paths.remove(self._prepared.path)
            paths.insert(0, self._prepared.path)
        self.busy_spools = []
        for path in paths:
            with self._positions.claim(path) as claimed:
                if not claimed:
                    self.busy_spools.append(path)
                    continue
                self._drain(path)
            if self._prepared is not None:
                break  # out of time: what is left stays in the spool
        if not finishing:
            return
        self._done = True
        if self._prepared is not None or self._out_of_time():
            return  # what is left stays in the spool for `trackhook sync`, which also closes
        status = self._finish_status
        if status is not None and not self.busy_spools and self._positions.closed_status() is None:
            self._ensure_open()
            self.tracker.hooks.close_run(self.run_info, status)
            self._positions.mark_closed(status)

    def _out_of_time(self) -> bool:
        return self._finish.is_set() and time.monotonic() >= self._deadline

    def _drain(self, path: Path) -> None:
        """Deliver ``path`` from the position on disk (read under the claim) to its end."""
        offset = self._positions.offset(path)
        pending = self._prepared
        if pending is not None and pending.path == path:
            self._prepared = None
            if pending.saved == offset:  # nobody else moved on meanwhile: resume, no duplicate
                self._prepared = pending
                self._send(pending)
                if self._prepared is not None:
                    return
                offset = pending.saved
        while not self._out_of_time():
            prepared = self._prepare_batch(path, offset)
            if prepared is None:
                return
            self._prepared = prepared
            self._send(prepared)
            if self._prepared is not None:
                return
            offset = prepared.line_offsets[-1]

    # -- making values fit the tracker ----------------------------------------------------------

    def _prepare(
        self, path: Path, entries: list[SpoolEntry], offset: int, sent: int = 0
    ) -> _Prepared:
        """Records for ``entries`` that fit the tracker's current limits."""
        prepared = _Prepared(path, [], saved=offset, sent=sent)
        self._extend(prepared, entries, until=None)
        return prepared

    def _prepare_batch(self, path: Path, offset: int) -> _Prepared | None:
        """Records for the spool lines from ``offset`` that fill one batch, or None if none.

        Reading on until the batch is full, rather than stopping at the end of a chunk of the
        spool, keeps requests full: a chunk rarely holds a whole number of batches.
        """
        until = self._batch_size()
        prepared = _Prepared(path, [], saved=offset)
        while len(prepared.records) < until:
            entries = read_spool(path, offset, _READ_BYTES)
            if not entries:
                break
            self._extend(prepared, entries, until)
            offset = prepared.line_offsets[-1]
        return prepared if prepared.entries else None

    def _extend(self, prepared: _Prepared, entries: list[SpoolEntry], until: int | None) -> None:
        """Add records for ``entries``, stopping at the first line end with ``until`` records."""
        limits = self._limits
        for entry in entries:
            prepared.entries.append(entry)
            for top_key, top_value in entry.values.items():
                for key, value in flatten(top_key, top_value):
                    prepared.records.append(self._record(limits, entry, key, value, prepared))
            prepared.line_counts.append(len(prepared.records))
            prepared.line_offsets.append(entry.end_offset)
            if until is not None and len(prepared.records) >= until:
                return

    def _batch_size(self) -> int:
        return self._limits.max_values_per_batch or _DEFAULT_BATCH

    def _record(
        self, limits: TrackerLimits, entry: SpoolEntry, key: str, value: object, into: _Prepared
    ) -> MetricRecord | ParamRecord:
        if is_metric(value):
            stored = limits.storable_key(key)
            into.flags.append((stored != key, False))
            self._tell_renamed(key, stored)
            return MetricRecord(stored, value, entry.step, entry.timestamp)  # type: ignore[arg-type]
        param_key = limits.param_key.format(key=key, step=entry.step)
        stored = limits.storable_key(param_key)
        self._tell_renamed(param_key, stored)
        text = param_text(value)  # type: ignore[arg-type]
        short = limits.fit_param_text(text)
        into.flags.append((stored != param_key, short is not None))
        if short is None:
            return ParamRecord(stored, value, entry.step, entry.timestamp)  # type: ignore[arg-type]
        return ParamRecord(stored, short, entry.step, entry.timestamp, full_value=text)

    def _tell_renamed(self, key: str, stored: str) -> None:
        if stored != key and key not in self._renamed_keys:
            self._renamed_keys.add(key)
            self._warn(
                f"tracker {self.tracker.name!r} cannot store the key {key!r} "
                f"({self._limits.why_unstorable(key)}); it is stored as {stored!r} (the run log "
                "keeps the original)"
            )

    # -- handing records over -------------------------------------------------------------------

    def _send(self, prepared: _Prepared) -> None:
        while prepared.sent < len(prepared.records):
            if self._out_of_time():
                return
            end = self._batch_end(prepared.records, prepared.sent)
            batch = prepared.records[prepared.sent : end]
            metrics = [record for record in batch if isinstance(record, MetricRecord)]
            params = [record for record in batch if isinstance(record, ParamRecord)]
            self._ensure_open()
            try:
                self.tracker.hooks.log_batch(self.run_info, metrics, params)
            except TighterLimitsRequired as demand:
                tighter = self._limits.tightened(**demand.changes)
                if tighter == self._limits:
                    raise
                self._limits = tighter
                self.report.retried += 1
                rebuilt = self._prepare(
                    prepared.path, prepared.entries, prepared.saved, prepared.sent
                )
                prepared.records, prepared.flags = rebuilt.records, rebuilt.flags
                continue
            for renamed, truncated in prepared.flags[prepared.sent : end]:
                self.report.renamed += renamed
                self.report.truncated += truncated
            received = sum(map(self.tracker.hooks.receives, batch))
            self.report.delivered += received
            self.report.skipped += len(batch) - received
            prepared.sent = end
            if self.tracker.hooks.batches or end == len(prepared.records) or self._save_due():
                self._save_progress(prepared)
        self._prepared = None

    def _save_due(self) -> bool:
        """For one-value-per-call trackers, save positions twice a second, not after each value."""
        now = time.monotonic()
        if now - self._last_save < _PER_VALUE_SAVE_INTERVAL:
            return False
        self._last_save = now
        return True

    def _batch_end(self, records: list[MetricRecord | ParamRecord], start: int) -> int:
        if not self.tracker.hooks.batches:
            # one hook call per value: a failure in the middle retries from that value on, so a
            # value the tracker accepted is never offered again
            return start + 1
        limits = self._limits
        most = self._batch_size()
        most_metrics = limits.max_metrics_per_batch or most
        most_params = limits.max_params_per_batch or most
        metrics = params = 0
        end = start
        while end < len(records) and end - start < most:
            if isinstance(records[end], MetricRecord):
                if metrics == most_metrics:
                    break
                metrics += 1
            else:
                if params == most_params:
                    break
                params += 1
            end += 1
        return end

    def _save_progress(self, prepared: _Prepared) -> None:
        """Record the end of the last line whose values have all been accepted."""
        index = bisect.bisect_right(prepared.line_counts, prepared.sent) - 1
        if index >= 0:
            safe = prepared.line_offsets[index]
            if safe > prepared.saved:
                self._positions.save(prepared.path, safe)
                prepared.saved = safe

    # -- reporting --------------------------------------------------------------------------------

    def _undelivered(self) -> int:
        if not self.tracker.hooks.receives_values:
            return 0
        return sum(
            count_values(iter_spool(path, self._positions.offset(path)))
            for path in self.store.spool_files(self.run_info.run_id)
        )

    def _warn(self, message: str) -> None:
        warn_in_background(message)
