"""Delivery: one thread per tracker moves a run's spooled values into that tracker.

The caller's thread only appends to the spool (see ``store.SpoolWriter``); everything that can be
slow or fail happens here, per tracker, so that a slow or dead tracker never holds back the caller
or another tracker. Each pass of a worker:

1. opens the run in its tracker (once per process, serialised across processes by a file lock);
2. flushes this process's spool and reads the lines its tracker has not received yet;
3. turns them into records that fit the tracker's declared ``TrackerLimits`` (param keys, renamed
   keys, truncated params, batch sizes) and hands them over with ``trackhook_log_batch`` (or the
   per-value hooks);
4. records how far the tracker has received each spool file, down to the value inside a line
   (``store.SpoolPosition``): after each accepted batch, and whenever a send stops (an outage, the
   close running out of time), so that a retry or a later ``trackhook sync`` never sends a value
   twice. Only a process killed between a tracker accepting values and that record being written
   can send them again (for per-value trackers, whose positions are written at most twice a
   second while all goes well, what was accepted within that half second).

A hook that raises ``ValuesRejected`` refuses values for their content: the batch is offered again
in halves until the refused values are found, and those are set aside for good (``rejected`` in
the run log, with the reason). Any other exception, ``SystemExit`` and ``KeyboardInterrupt``
included, is an outage of that tracker: retried with exponential backoff while the run goes on,
the values waiting in the spool, not in memory. When the run finishes, the worker delivers what is
left within a bounded time (longer while the tracker is still opening the run or still accepting
values: ``DeliverySettings.patience``), then closes the run in its tracker, or reports what it could
not deliver and why.

A failure of trackhook's own store (``store.RunStoreError``: a full or read-only folder, no
permission) is never taken for the tracker's: it is said once for the run, naming the folder and
the cause, retried while the run goes on, and at close reported at once rather than waited out.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook import formats
from trackhook.errors import TrackhookWarning, ValuesRejected, warn_in_background
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.records import MetricRecord, ParamRecord, RunInfo, Status, param_text
from trackhook.redaction import redact, redact_text
from trackhook.runlog import MAX_REJECTED_KEYS, MAX_REJECTED_REASONS, OTHER_REASONS
from trackhook.store import (
    RunStore,
    RunStoreError,
    SpoolEntry,
    SpoolPosition,
    SpoolWriter,
    UnsafeStorePath,
    iter_spool,
    read_spool,
)
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

_MAX_REASON_LENGTH = 200


@dataclass
class DeliveryReport:
    """What happened to one tracker's values: recorded in the run log at close.

    ``undelivered`` counts every value of the run this tracker has not received: those waiting
    in the spool for ``trackhook sync``, and, for the process that tracked them, those the disk
    never took (held in memory, or lost: ``SpoolWriter.held_values`` and ``lost_values``).

    ``last_error`` is the error the tracker is failing with as the report is made, ``None`` when
    it works; an error it recovered from (a later attempt succeeded) moves to
    ``recovered_error``, so that a run whose values all arrived does not look broken. How often
    the tracker failed is ``retried``.
    """

    delivered: int = 0
    retried: int = 0
    renamed: int = 0
    truncated: int = 0
    undelivered: int = 0
    skipped: int = 0
    """Values of a kind the tracker has no hook for (metrics, or params)."""
    rejected: int = 0
    """Values the tracker refused for their content (``ValuesRejected``): set aside for good."""
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    """How many values were refused for each reason: at most ``MAX_REJECTED_REASONS`` reasons."""
    rejected_keys: list[str] = field(default_factory=list)
    """The first few keys refused (``MAX_REJECTED_KEYS``): enough to find the culprit."""
    last_error: str | None = None
    recovered_error: str | None = None
    """The last error the tracker recovered from, if any (see the class's docstring)."""

    def recover(self) -> None:
        """An attempt succeeded: the error before it is history, not the tracker's state."""
        if self.last_error is not None:
            self.recovered_error, self.last_error = self.last_error, None

    def reject(self, key: str, reason: str) -> None:
        """Count a refused value under its reason, keeping the summary bounded."""
        self.rejected += 1
        if (
            reason not in self.rejected_reasons
            and len(self.rejected_reasons) >= MAX_REJECTED_REASONS
        ):
            reason = OTHER_REASONS
        self.rejected_reasons[reason] = self.rejected_reasons.get(reason, 0) + 1
        if key not in self.rejected_keys and len(self.rejected_keys) < MAX_REJECTED_KEYS:
            self.rejected_keys.append(key)

    def as_dict(self) -> dict[str, object]:
        counts: dict[str, object] = {
            formats.DELIVERED: self.delivered,
            formats.RETRIED: self.retried,
            formats.RENAMED: self.renamed,
            formats.TRUNCATED: self.truncated,
            formats.UNDELIVERED: self.undelivered,
            formats.SKIPPED: self.skipped,
            formats.REJECTED: self.rejected,
            formats.LAST_ERROR: self.last_error,
        }
        if self.recovered_error is not None:
            counts[formats.RECOVERED_ERROR] = self.recovered_error
        if self.rejected:
            counts[formats.REJECTED_REASONS] = dict(self.rejected_reasons)
            counts[formats.REJECTED_KEYS] = list(self.rejected_keys)
        return counts


@dataclass
class _Prepared:
    """Records made from spool lines, and how many of them the tracker has handled."""

    path: Path
    start: SpoolPosition
    """Where ``entries`` start: the first entry's first ``start.values_done`` values are skipped."""
    entries: list[SpoolEntry] = field(default_factory=list)
    records: list[MetricRecord | ParamRecord] = field(default_factory=list)
    flags: list[tuple[bool, bool]] = field(default_factory=list)  # (renamed, truncated)
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


_TRIES_AT_EXIT = 2
"""Failed passes after which a worker gives up at interpreter exit (see ``finish``)."""
_GRACE_AFTER_TIMEOUT = 5.0
"""Seconds a worker gets beyond its time to return from the hook it is in."""
_PROGRESS_WINDOW = 5.0
"""A tracker that opened the run or accepted values this recently is making progress: at close it
gets more time (up to ``DeliverySettings.patience``)."""
_JOIN_SLICE = 0.1


def wait_for_workers(workers: Iterable[TrackerWorker], timeout: float) -> None:
    """Wait for finishing workers together; report those still stuck in a hook.

    Each gets ``timeout`` seconds and a grace to return from its hook, and more while it is still
    opening the run or accepting values (see ``TrackerWorker.give_up_at``).
    """
    deadline = time.monotonic() + timeout + _GRACE_AFTER_TIMEOUT
    for worker in workers:
        while worker.is_alive():
            worker.join(_JOIN_SLICE)
            now = time.monotonic()
            if worker.is_alive() and now >= max(
                deadline, worker.give_up_at() + _GRACE_AFTER_TIMEOUT
            ):
                worker.give_up()
                break


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
        self._limits: TrackerLimits = tracker.limits
        self._renamed_keys: set[str] = set()
        self._warned = False
        self._warned_of_rejection = False
        self._last_save = 0.0
        self._unsaved: _Prepared | None = None
        """The send whose accepted values are not on disk yet (see ``_save_progress``)."""
        self._save_lock = threading.Lock()
        self._opening_since: float | None = None
        self._open_failed = False
        """An attempt to open failed: a later one is an outage's retry, not a cold start."""
        self._last_progress = float("-inf")
        self._wake = threading.Event()
        self._finish = threading.Event()
        self._finish_status: Status | None = None
        self._at_exit = False
        self._finish_started = float("inf")
        self._deadline = float("inf")
        self._patience_deadline = float("inf")
        self._ran_out_of_time = False
        self._done = False
        self._report_lock = threading.Lock()
        self._reported = False
        if open_eagerly:
            try:
                self._positions.reopen()
            except RunStoreError as trouble:
                self._store_failed(trouble)

    # -- control, from other threads -------------------------------------------------------------

    def finish(self, status: Status | None, timeout: float, *, at_exit: bool = False) -> None:
        """Deliver what is left within ``timeout`` seconds, then close with ``status`` (if any).

        A tracker still opening the run (a cold start: importing its library, creating its
        database) or still accepting values gets up to ``DeliverySettings.patience`` seconds more,
        so that a slow start does not leave the run unclosed; one failing or stuck gets no more.

        ``at_exit``: the interpreter is exiting, when a tracker library may no longer start
        threads or register exit handlers. A failure is then retried once, not until
        ``timeout``: what is left stays in the spool for ``trackhook sync``, and the user's
        process is not held up by a tracker that cannot work any more.
        """
        self._finish_status = status
        self._at_exit = at_exit
        self._finish_started = time.monotonic()
        self._deadline = self._finish_started + timeout
        self._patience_deadline = self._deadline + self.settings.patience
        self._finish.set()
        self._wake.set()

    def give_up_at(self) -> float:
        """When (``time.monotonic``) the worker stops, unless it makes progress before then.

        Before ``finish``, never. After it, the deadline; while the tracker is opening the run
        for the first time (a cold start, not a retry after a failed open: a server that is
        down) or accepted values within ``_PROGRESS_WINDOW`` seconds, later, up to the patience.
        """
        if self._opening_since is not None and not self._open_failed:
            return self._patience_deadline
        later = max(self._deadline, self._last_progress + _PROGRESS_WINDOW)
        return min(later, self._patience_deadline)

    # -- the thread --------------------------------------------------------------------------------

    def run(self) -> None:
        self._loop()
        if self._own is not None:
            self._own.flush()
        self._final_report()

    def run_log_entry(self) -> dict[str, Any]:
        """This tracker in the run log: settings, the tracker's facts, and this process's counts.

        Each writer of the run log adds its own counts to those recorded (``runlog.CountsWritten``).
        """
        return {
            "name": self.tracker.name,
            "type": self.tracker.settings.type,
            "on_error": self.tracker.settings.on_error,
            "config": self.tracker.recorded_config,
            "run": redact(self.facts),
            "delivery": self.report.as_dict(),
        }

    def closed_in_tracker(self) -> bool:
        """Whether the run has been closed in this tracker (by this process or another)."""
        return self._positions.closed_status() is not None

    def give_up(self) -> None:
        """Report now, from the closing thread, while this thread is still stuck in a hook.

        A hook that never returns (a server that accepts the connection and never answers, a
        client library blocked at interpreter exit) must not make the run log claim that
        everything was delivered: what the tracker has not acknowledged is counted and reported
        as undelivered, and stays in the spool for ``trackhook sync``. What it acknowledged is
        recorded first, so that the sync does not send it again.
        """
        self._ran_out_of_time = True
        # What could not be saved counts below as undelivered: this is the user's closing thread.
        with suppress(OSError, UnsafeStorePath):
            self._save_progress()
        self._final_report()

    def _final_report(self) -> None:
        # Under the lock from start to end: whichever of this thread and the closing thread comes
        # second returns only once the counts are in the report that the run log records.
        with self._report_lock:
            if self._reported:
                return
            spooled = self._undelivered_in_spool()
            held, lost = self._never_spooled()
            self.report.undelivered = spooled + held + lost
            left_open = self._finish_status is not None and not self.closed_in_tracker()
            if self._ran_out_of_time and (self.report.undelivered or left_open):
                self.report.last_error = self._why_out_of_time()
            self._reported = True
        if self.fatal is not None or self._finish_status is None:
            return  # a sync while the owner runs: the owner delivers the rest, and says so
        run_id = self.run_info.run_id
        last_error = f" (last error: {self.report.last_error})" if self.report.last_error else ""
        if self.report.undelivered:
            self._warn(
                f"tracker {self.tracker.name!r} could not deliver {self.report.undelivered} "
                f"values of run {run_id!r}{last_error}: "
                + "; ".join(self._where_undelivered(spooled, held, lost))
            )
        elif left_open:
            self._warn(
                f"tracker {self.tracker.name!r} has not closed run {run_id!r}{last_error}; "
                f"close it with: trackhook sync {run_id}"
            )

    def _where_undelivered(self, spooled: int, held: int, lost: int) -> list[str]:
        """Where the undelivered values are, each with what becomes of them."""
        run_id = self.run_info.run_id
        why = self._own.error if self._own is not None else None
        parts = []
        if spooled:
            parts.append(
                f"{spooled} are kept in {self.store.spool_dir(run_id)}; deliver them with: "
                f"trackhook sync {run_id}"
            )
        if held:
            parts.append(
                f"{held} never reached the spool, the disk refusing them ({why}): they are "
                "held in memory for a last try as the run closes and lost if it fails"
            )
        if lost:
            parts.append(
                f"{lost} never reached the spool, the disk refusing them ({why}): they were "
                "dropped and no tracker will receive them"
            )
        return parts

    def _why_out_of_time(self) -> str:
        """Why the worker stopped before delivering everything: said in ``last_error``."""
        now = time.monotonic()
        if self._opening_since is not None:
            return f"still opening the run after {now - self._opening_since:.0f} s"
        idle = now - max(self._last_progress, self._finish_started)
        if self.report.last_error is not None:  # failing still: a success would have cleared it
            return f"gave up after {idle:.0f} s without progress: {self.report.last_error}"
        if now - self._last_progress < _PROGRESS_WINDOW:
            waited = self._patience_deadline - self._finish_started
            return (
                f"still delivering when the wait of {waited:.0f} s (timeout and patience) ran out"
            )
        return f"no progress for {idle:.0f} s: a hook of the tracker did not return"

    def _loop(self) -> None:
        backoff = 0.0
        failures_at_exit = 0
        while True:
            finishing = self._finish.is_set()
            try:
                self._pass(finishing)
                backoff = 0.0
            except RunStoreError as trouble:
                self._store_failed(trouble)
                if finishing:
                    return  # waiting would not make the store writable: report now
                backoff = min(max(backoff * 2, 0.25), self.settings.max_backoff)
            # BaseException: a plugin's SystemExit or KeyboardInterrupt would end this thread
            # silently. A real Ctrl-C reaches the main thread, never this one.
            except BaseException as error:
                self._failed(error)
                if self.fatal is not None:
                    return
                if finishing and self._at_exit:
                    failures_at_exit += 1
                    if failures_at_exit == _TRIES_AT_EXIT:
                        return
                backoff = min(max(backoff * 2, 0.25), self.settings.max_backoff)
            if self._done:
                return
            if finishing and self._out_of_time():
                self._ran_out_of_time = True
                return
            wait = backoff or self.settings.interval
            if finishing:
                wait = min(backoff, max(self.give_up_at() - time.monotonic(), 0.0))
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _store_failed(self, trouble: RunStoreError) -> None:
        """Trackhook's own store failed, not the tracker: said once for all trackers of the run
        (naming the folder and the cause), recorded as the reason values are not delivered."""
        self.report.last_error = f"the run log store failed: {trouble.cause} in {trouble.folder}"
        self.store.tell_once(trouble)

    def _failed(self, error: BaseException) -> None:
        """A tracker's failure of any kind: recorded and retried, or fatal with ``on_error:
        raise``."""
        self.report.last_error = redact_text(f"{type(error).__name__}: {error}")
        if self.tracker.settings.on_error == "raise":
            self.fatal = error
            if self._on_fatal is not None:
                self._on_fatal(self.tracker.name, error)
            return
        self.report.retried += 1
        if not self._warned:
            self._warned = True
            self._warn(
                f"tracker {self.tracker.name!r} failed ({self.report.last_error}); "
                "the run goes on, its values are kept and retried in the background"
            )

    def _ensure_open(self) -> None:
        if not self.opened.is_set():
            self._opening_since = time.monotonic()
            try:
                with self._positions.opening():
                    self.facts = self.tracker.hooks.open_run(self.run_info)
            except BaseException:
                self._open_failed = True
                raise
            finally:
                self._opening_since = None
            self._last_progress = time.monotonic()
            self.report.recover()
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
            # before opening, which may fail: what is tracked is then on disk; finishing, try
            # the disk now even if it refused a moment ago, so that what it takes is delivered
            self._own.flush(retry=finishing)
        if self._open_eagerly and not self.opened.is_set():
            self._ensure_open()
            if self._own is not None:
                self._own.flush()
        receives = self.tracker.hooks.receives_values
        paths = self.store.spool_files(self.run_info.run_id) if receives else []
        self.busy_spools = []
        complete = True
        for path in paths:
            with self._positions.claim(path) as claimed:
                if not claimed:
                    self.busy_spools.append(path)
                    continue
                complete = self._drain(path)
            if not complete:
                break  # out of time: what is left stays in the spool
        if not finishing:
            return
        self._done = True
        if not complete or self._out_of_time():
            self._ran_out_of_time = True
            return  # what is left stays in the spool for `trackhook sync`, which also closes
        status = self._finish_status
        if status is not None and not self.busy_spools and self._positions.closed_status() is None:
            self._ensure_open()
            self.tracker.hooks.close_run(self.run_info, status)
            self.report.recover()
            self._positions.mark_closed(status)

    def _out_of_time(self) -> bool:
        return self._finish.is_set() and time.monotonic() >= self.give_up_at()

    def _drain(self, path: Path) -> bool:
        """Deliver ``path`` from the position on disk (read under the claim) to its end.

        Returns False when time ran out first. Every send leaves its progress on disk, so the
        position read here is exactly where the last send, of this process or another, stopped
        (or, if that could not be written, this process remembers it).
        """
        position = self._positions.position(path)
        unsaved = self._unsaved  # accepted, but its position could not be written (a full disk)
        if unsaved is not None and unsaved.path == path:
            position = max(position, unsaved.position())
        while not self._out_of_time():
            prepared = self._prepare_batch(path, position)
            if prepared is None:
                return True
            self._send(prepared)
            if prepared.sent < len(prepared.records):
                return False
            position = prepared.position()
        return False

    # -- making values fit the tracker ----------------------------------------------------------

    def _prepare_batch(self, path: Path, start: SpoolPosition) -> _Prepared | None:
        """Records for the spool lines from ``start`` that fill one batch, or None if none.

        Reading on until the batch is full, rather than stopping at the end of a chunk of the
        spool, keeps requests full: a chunk rarely holds a whole number of batches.
        """
        until = self._batch_size()
        prepared = _Prepared(path, start)
        offset = start.offset
        while len(prepared.records) < until:
            entries = read_spool(path, offset, _READ_BYTES)
            if not entries:
                break
            self._extend(prepared, entries, until)
            offset = prepared.line_offsets[-1]
        return prepared if prepared.entries else None

    def _extend(self, prepared: _Prepared, entries: list[SpoolEntry], until: int | None) -> None:
        """Add records for ``entries``, stopping at the first line end with ``until`` records.

        The values of the line ``prepared.start`` points into that were handled already are left
        out: they are never offered again.
        """
        limits = self._limits
        for entry in entries:
            skip = prepared.start.values_done if not prepared.entries else 0
            prepared.entries.append(entry)
            for top_key, top_value in entry.values.items():
                for key, value in flatten(top_key, top_value):
                    if skip:
                        skip -= 1
                        continue
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

    def _tighten(self, prepared: _Prepared, demand: TighterLimitsRequired) -> None:
        """Remake the records with the tighter limits the tracker asked for."""
        tighter = self._limits.tightened(**demand.changes)
        if tighter == self._limits:
            raise demand
        self._limits = tighter
        self.report.retried += 1
        rebuilt = _Prepared(prepared.path, prepared.start)
        self._extend(rebuilt, prepared.entries, until=None)
        prepared.records, prepared.flags = rebuilt.records, rebuilt.flags

    # -- handing records over -------------------------------------------------------------------

    def _send(self, prepared: _Prepared) -> None:
        """Offer ``prepared``'s records batch by batch until all are handled or time runs out.

        However the send stops, what the tracker accepted is recorded on disk before this returns
        or raises.
        """
        try:
            while prepared.sent < len(prepared.records) and not self._out_of_time():
                end = self._batch_end(prepared.records, prepared.sent)
                try:
                    self._offer(prepared, end)
                except TighterLimitsRequired as demand:
                    self._tighten(prepared, demand)
                    continue
                if self.tracker.hooks.batches or self._save_due():
                    self._save_progress()
        finally:
            self._save_progress()

    def _offer(self, prepared: _Prepared, end: int) -> None:
        """Hand the records from ``prepared.sent`` to ``end`` to the tracker.

        Where it refuses them for their content (``ValuesRejected``), the two halves are offered
        in turn, down to single values, which are set aside: the values next to a refused one
        still arrive, and an outage (any other exception) stops the send as usual.
        """
        batch = prepared.records[prepared.sent : end]
        metrics = [record for record in batch if isinstance(record, MetricRecord)]
        params = [record for record in batch if isinstance(record, ParamRecord)]
        self._ensure_open()
        try:
            self.tracker.hooks.log_batch(self.run_info, metrics, params)
        except ValuesRejected as refusal:
            if len(batch) == 1:
                self._set_aside(prepared, refusal)
                return
            middle = prepared.sent + len(batch) // 2
            self._offer(prepared, middle)
            self._offer(prepared, end)
            return
        for renamed, truncated in prepared.flags[prepared.sent : end]:
            self.report.renamed += renamed
            self.report.truncated += truncated
        received = sum(map(self.tracker.hooks.receives, batch))
        self.report.delivered += received
        self.report.skipped += len(batch) - received
        self._handled(prepared, end)

    def _set_aside(self, prepared: _Prepared, refusal: ValuesRejected) -> None:
        """The tracker will never take this value: count it, say so once, and move past it."""
        record = prepared.records[prepared.sent]
        reason = redact_text(str(refusal.reason))[:_MAX_REASON_LENGTH]
        self.report.reject(record.key, reason)
        if not self._warned_of_rejection:
            self._warned_of_rejection = True
            self._warn(
                f"tracker {self.tracker.name!r} refused {record.key!r} at step {record.step} "
                f"({reason}); values it refuses are set aside, never offered again, and counted "
                f"as rejected in the run log of run {self.run_info.run_id!r} "
                f"(see: trackhook show {self.run_info.run_id})"
            )
        self._handled(prepared, prepared.sent + 1)

    def _handled(self, prepared: _Prepared, end: int) -> None:
        """The records up to ``end`` need never be offered again: remember, to save soon."""
        with self._save_lock:
            prepared.sent = end
            self._unsaved = prepared
        self._last_progress = time.monotonic()
        self.report.recover()

    def _save_progress(self) -> None:
        """Write down how far the tracker has received the spool file it is being sent.

        Called from this thread and, through ``give_up``, from the closing thread while this one
        is stuck in a hook: under a lock, and always the latest progress, so a position on disk
        only ever moves forward.
        """
        with self._save_lock:
            prepared = self._unsaved
            if prepared is not None:
                self._positions.save(prepared.path, prepared.position())
                self._unsaved = None

    def _save_due(self) -> bool:
        """For one-value-per-call trackers, save positions twice a second, not after each value
        (a send that stops saves at once, whatever this says)."""
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

    # -- reporting --------------------------------------------------------------------------------

    def _undelivered_in_spool(self) -> int:
        if not self.tracker.hooks.receives_values:
            return 0
        try:
            paths = self.store.spool_files(self.run_info.run_id)
        except RunStoreError as trouble:
            self._store_failed(trouble)
            return 0
        return sum(map(self._left_in, paths))

    def _left_in(self, path: Path) -> int:
        try:
            position = self._positions.position(path)
        except (UnsafeStorePath, RunStoreError):
            position = SpoolPosition()  # nothing received that this process can vouch for
        left = count_values(iter_spool(path, position.offset)) - position.values_done
        return max(left, 0)  # a position past its line's values: a garbled file

    def _never_spooled(self) -> tuple[int, int]:
        """This process's values the disk has not taken: (still held in memory, lost for good).

        No tracker can have received them, and no sync can find them.
        """
        if self._own is None or not self.tracker.hooks.receives_values:
            return 0, 0
        return self._own.held_values, self._own.lost_values

    def _warn(self, message: str) -> None:
        warn_in_background(message)
