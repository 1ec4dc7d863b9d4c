"""Delivery of one run to one tracker, a pass at a time: ``TrackerDelivery.deliver_once``.

The caller's thread only appends to the spool (see ``store.SpoolWriter``); everything that can be
slow or fail happens in a delivery pass, per tracker, so that a slow or dead tracker never holds
back the caller or another tracker. One pass:

1. opens the run in its tracker (once per process, serialised across processes by a file lock);
2. flushes this process's spool and, for each spool file of the run, takes a ``cursor.SpoolCursor``
   (the file's claim, and where the tracker's last send stopped);
3. turns the lines into records that fit the tracker's declared ``TrackerLimits`` (``fitting``)
   and hands them over batch by batch (``batching``) with ``trackhook_log_batch`` (or the
   per-value hooks);
4. records how far the tracker has received each spool file, down to the value inside a line
   (``progress``): after each accepted batch, and whenever a send stops (an outage, the close
   running out of time), so that a retry or a later ``trackhook sync`` never sends a value twice.
   Only a process killed between a tracker accepting values and that record being written can
   send them again (for per-value trackers, whose positions are written at most twice a second
   while all goes well, what was accepted within that half second);
5. finishing (a deadline given), closes the run in the tracker once everything is delivered.

A pass never raises: it returns a ``PassOutcome`` saying how it ended, the tracker's failure or
the store's included, and the caller decides what comes next. ``worker.TrackerWorker`` is the
thread that repeats passes with the retry policy (``backoff``); ``trackhook sync`` builds the same
thread, without a spool of its own.

A hook that raises ``ValuesRejected`` refuses values for their content: the batch is offered again
in halves until the refused values are found, and those are set aside for good (``rejected`` in
the run log, with the reason). Any other exception, ``SystemExit`` and ``KeyboardInterrupt``
included, is an outage of that tracker (``Ending.TRACKER_FAILED``): its values wait in the spool,
not in memory. A failure of trackhook's own store (``store.RunStoreError``: a full or read-only
folder, no permission) is never taken for the tracker's (``Ending.STORE_FAILED``): it is said once
for the run, naming the folder and the cause.

While finishing, a tracker still opening the run (a cold start) or still accepting values gets
more time than the deadline, up to ``DeliverySettings.patience`` (``give_up_at``); one failing or
stuck gets no more. What is left stays in the spool for ``trackhook sync``, and the report
(``finish_report``) says how much and why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.batching import batch_end
from trackhook.cursor import SpoolCursor
from trackhook.errors import ValuesRejected, warn_in_background
from trackhook.fitting import FittedLines, Fitter
from trackhook.limits import TighterLimitsRequired
from trackhook.progress import SendProgress
from trackhook.records import FileRecord, RunInfo, Status
from trackhook.redaction import redact, redact_text
from trackhook.report import DeliveryReport
from trackhook.store import (
    RunStore,
    RunStoreError,
    SpoolEntry,
    SpoolPosition,
    SpoolWriter,
    UnsafeStorePath,
    iter_spool,
)
from trackhook.values import flatten

if TYPE_CHECKING:
    from trackhook.config import DeliverySettings
    from trackhook.trackers import LoadedTracker

__all__ = [
    "Ending",
    "Finish",
    "PassOutcome",
    "TrackerDelivery",
    "count_values",
]

_MAX_REASON_LENGTH = 200

_PROGRESS_WINDOW = 5.0
"""A tracker that opened the run or accepted values this recently is making progress: at close it
gets more time (up to ``DeliverySettings.patience``)."""


def count_values(entries: Iterable[SpoolEntry]) -> int:
    """How many values a tracker receives for ``entries``: nested dicts count by their leaves."""
    return sum(
        1
        for entry in entries
        for key, value in entry.values.items()
        for _ in flatten(key, value, entry.files)
    )


class Ending(Enum):
    """How one delivery pass ended."""

    MORE_TO_DO = "more to do"
    """The run goes on: later passes deliver what is tracked next."""
    DONE = "done"
    """Finishing: everything was delivered and the run closed in the tracker (if asked and no
    spool file was busy)."""
    OUT_OF_TIME = "out of time"
    """Finishing: time ran out; what is left stays in the spool for ``trackhook sync``."""
    TRACKER_FAILED = "the tracker failed"
    """A hook raised (anything but ``ValuesRejected``): what it took is recorded, the rest waits."""
    STORE_FAILED = "the store failed"
    """Trackhook's own store refused a read or a write (``RunStoreError``)."""


@dataclass(frozen=True)
class PassOutcome:
    """What one ``TrackerDelivery.deliver_once`` did."""

    ending: Ending
    busy: tuple[Path, ...] = ()
    """Spool files another process (or cursor) had claimed: not delivered by this pass."""
    error: BaseException | None = None
    """The tracker's or the store's error, when the pass ended with one."""


@dataclass(frozen=True)
class Finish:
    """The run is finishing: what is left is delivered by ``deadline``, then the run is closed
    in the tracker with ``status``."""

    status: Status | None
    """``None``: deliver only, never close (a sync while the run's owner still runs)."""
    started: float
    """When the finish was asked for (``time.monotonic``)."""
    deadline: float
    """``time.monotonic`` instant; progress may earn more, up to the patience (``give_up_at``)."""
    at_exit: bool = False
    """The interpreter is exiting: see ``worker.TrackerWorker.finish``."""


class TrackerDelivery:
    """One run's delivery to one tracker, in this process: passes, and the report at the end.

    ``own_spool`` is this process's spool when it owns the run: flushed before each pass, and the
    run opened in the tracker at once. ``trackhook sync`` passes ``None``: it only delivers.

    Not a thread: each method runs in the thread that calls it. ``give_up`` and ``finish_report``
    may be called from the closing thread while a pass is stuck in a hook in another.
    """

    def __init__(
        self,
        tracker: LoadedTracker,
        run: RunInfo,
        store: RunStore,
        settings: DeliverySettings,
        *,
        own_spool: SpoolWriter | None,
        on_opened: Callable[[], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self.run_info = run
        self.store = store
        self.settings = settings
        self.report = DeliveryReport()
        self.facts: dict[str, str] = {}
        self.opened = threading.Event()
        self._own = own_spool
        self._on_opened = on_opened
        self._positions = store.positions(run.run_id, tracker.name)
        self._fitter = Fitter(tracker.limits, self._tell_renamed, store.root)
        self._progress = SendProgress(self._positions)
        self._warned = False
        self._warned_of_rejection = False
        self._opening_since: float | None = None
        self._open_failed = False
        """An attempt to open failed: a later one is an outage's retry, not a cold start."""
        self._last_progress = float("-inf")
        self._report_lock = threading.Lock()
        self._reported = False

    # -- one pass ----------------------------------------------------------------------------------

    def deliver_once(
        self,
        deadline: float | None,
        *,
        status: Status | None = None,
        interrupt: threading.Event | None = None,
    ) -> PassOutcome:
        """Deliver every spool file of the run that no other process is delivering right now.

        Other processes of the run (a multiprocessing pool, a shell task running Python) only
        spool; the run's owner delivers their files too, each under its claim.

        ``deadline`` (``time.monotonic``) is given once the run finishes: the pass stops when it
        passes (or ``give_up_at`` it, if the tracker is making progress) and, when everything is
        delivered, closes the run in the tracker with ``status`` (``None``: not at all). Without a
        deadline, the run goes on: ``interrupt``, set from another thread when the run begins to
        finish, ends the pass at its next batch, so that the next pass runs with the deadline.
        """
        stop = self._stop_rule(deadline, interrupt)
        try:
            ending, busy = self._pass(deadline is not None, status, stop)
        except RunStoreError as trouble:
            self._store_failed(trouble)
            return PassOutcome(Ending.STORE_FAILED, error=trouble)
        # BaseException: a plugin's SystemExit or KeyboardInterrupt is that tracker's failure. A
        # real Ctrl-C reaches the main thread, never a delivery thread.
        except BaseException as error:
            self.report.last_error = redact_text(f"{type(error).__name__}: {error}")
            return PassOutcome(Ending.TRACKER_FAILED, error=error)
        return PassOutcome(ending, busy)

    def give_up_at(self, deadline: float) -> float:
        """When (``time.monotonic``) a finishing delivery stops, unless it makes progress first.

        The deadline; while the tracker is opening the run for the first time (a cold start, not
        a retry after a failed open: a server that is down) or accepted values within
        ``_PROGRESS_WINDOW`` seconds, later, up to ``DeliverySettings.patience`` beyond it.
        """
        patience_until = deadline + self.settings.patience
        if self._opening_since is not None and not self._open_failed:
            return patience_until
        return min(max(deadline, self._last_progress + _PROGRESS_WINDOW), patience_until)

    def time_is_up(self, deadline: float) -> bool:
        """Whether a finishing delivery with ``deadline`` stops now (see ``give_up_at``)."""
        return time.monotonic() >= self.give_up_at(deadline)

    def _stop_rule(
        self, deadline: float | None, interrupt: threading.Event | None
    ) -> Callable[[], bool]:
        """When a pass stops before the end of the spool: checked before each batch."""
        if deadline is not None:
            return lambda: self.time_is_up(deadline)
        if interrupt is not None:
            return interrupt.is_set
        return lambda: False

    def _pass(
        self, finishing: bool, status: Status | None, stop: Callable[[], bool]
    ) -> tuple[Ending, tuple[Path, ...]]:
        if self._own is not None:
            # before opening, which may fail: what is tracked is then on disk; finishing, try
            # the disk now even if it refused a moment ago, so that what it takes is delivered
            self._own.flush(retry=finishing)
            # the run's owner opens the run at once, while training goes on: a cold start
            # (importing the tracker's library) is then over by the close, and client_context
            # works; a sync opens it only to send or close
            if not self.opened.is_set():
                self._ensure_open()
                self._own.flush()
        complete, busy = self._drain_all(stop)
        if not finishing:
            return Ending.MORE_TO_DO, busy
        if not complete or stop():
            return Ending.OUT_OF_TIME, busy  # what is left stays for `trackhook sync`
        if status is not None and not busy and self._positions.closed_status() is None:
            self._ensure_open()
            self.tracker.hooks.close_run(self.run_info, status)
            self.report.recover()
            self._positions.mark_closed(status)
        return Ending.DONE, busy

    def _drain_all(self, stop: Callable[[], bool]) -> tuple[bool, tuple[Path, ...]]:
        """Deliver each spool file this process can claim; (whether all were delivered to their
        end, the files another holder had claimed)."""
        receives = self.tracker.hooks.receives_values
        paths = self.store.spool_files(self.run_info.run_id) if receives else []
        busy: list[Path] = []
        for path in paths:
            with SpoolCursor(path, self._positions, self._progress, self._fitter) as cursor:
                if not cursor.claimed:
                    busy.append(path)
                    continue
                if not self._drain(cursor, stop):
                    return False, tuple(busy)  # stopped: what is left stays in the spool
        return True, tuple(busy)

    def _drain(self, cursor: SpoolCursor, stop: Callable[[], bool]) -> bool:
        """Deliver the cursor's file to its end; False when ``stop`` said so first."""
        while not stop():
            batch = cursor.next_batch()
            if batch is None:
                return True
            self._send(cursor, batch, stop)
            if batch.sent < len(batch.records):
                return False
        return False

    def _ensure_open(self) -> None:
        if self.opened.is_set():
            return
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

    # -- handing records over -------------------------------------------------------------------

    def _send(self, cursor: SpoolCursor, batch: FittedLines, stop: Callable[[], bool]) -> None:
        """Offer ``batch``'s records hook call by hook call until all are handled or ``stop``.

        However the send stops, what the tracker accepted is recorded on disk before this returns
        or raises.
        """
        hooks = self.tracker.hooks
        try:
            while batch.sent < len(batch.records) and not stop():
                end = batch_end(
                    batch.records, batch.sent, self._fitter.limits, batches=hooks.batches
                )
                try:
                    self._offer(cursor, batch, end)
                except TighterLimitsRequired as demand:
                    self._fitter.tighten(batch, demand)
                    self.report.retried += 1
                    continue
                # a file is costly to send twice: its position is written as soon as it is sent
                sent_a_file = isinstance(batch.records[end - 1], FileRecord)
                if hooks.batches or sent_a_file or cursor.save_due():
                    cursor.save()
        finally:
            cursor.save()

    def _offer(self, cursor: SpoolCursor, batch: FittedLines, end: int) -> None:
        """Hand the records from ``batch.sent`` to ``end`` to the tracker.

        Where it refuses them for their content (``ValuesRejected``), the two halves are offered
        in turn, down to single values, which are set aside: the values next to a refused one
        still arrive, and an outage (any other exception) stops the send as usual.
        """
        records = batch.records[batch.sent : end]
        self._ensure_open()
        try:
            received = self.tracker.hooks.log_records(self.run_info, records)
        except ValuesRejected as refusal:
            if len(records) == 1:
                self._set_aside(cursor, batch, refusal)
                return
            middle = batch.sent + len(records) // 2
            self._offer(cursor, batch, middle)
            self._offer(cursor, batch, end)
            return
        renamed, truncated = batch.count_flags(end)
        self.report.renamed += renamed
        self.report.truncated += truncated
        self.report.delivered += received
        self.report.skipped += len(records) - received
        self._handled(cursor, batch, end)

    def _set_aside(self, cursor: SpoolCursor, batch: FittedLines, refusal: ValuesRejected) -> None:
        """The tracker will never take this value: count it, say so once, and move past it."""
        record = batch.records[batch.sent]
        reason = redact_text(str(refusal.reason))[:_MAX_REASON_LENGTH]
        self.report.reject(record.key, reason)
        if not self._warned_of_rejection:
            self._warned_of_rejection = True
            warn_in_background(
                f"tracker {self.tracker.name!r} refused {record.key!r} at step {record.step} "
                f"({reason}); values it refuses are set aside, never offered again, and counted "
                f"as rejected in the run log of run {self.run_info.run_id!r} "
                f"(see: trackhook show {self.run_info.run_id})"
            )
        self._handled(cursor, batch, batch.sent + 1)

    def _handled(self, cursor: SpoolCursor, batch: FittedLines, end: int) -> None:
        """The records up to ``end`` need never be offered again: remember, to save soon."""
        cursor.handled(batch, end)
        self._last_progress = time.monotonic()
        self.report.recover()

    def _tell_renamed(self, key: str, stored: str, why: str | None) -> None:
        warn_in_background(
            f"tracker {self.tracker.name!r} cannot store the key {key!r} "
            f"({why}); it is stored as {stored!r} (the run log keeps the original)"
        )

    # -- failures --------------------------------------------------------------------------------

    def _store_failed(self, trouble: RunStoreError) -> None:
        """Trackhook's own store failed, not the tracker: said once for all trackers of the run
        (naming the folder and the cause), recorded as the reason values are not delivered."""
        self.report.last_error = f"the run log store failed: {trouble.cause} in {trouble.folder}"
        self.store.tell_once(trouble)

    def retrying(self) -> None:
        """The tracker failed and its values wait to be retried: counted as ``retried``, and said
        once (a tracker configured with ``on_error: raise`` is not retried: never called)."""
        self.report.retried += 1
        if not self._warned:
            self._warned = True
            warn_in_background(
                f"tracker {self.tracker.name!r} failed ({self.report.last_error}); "
                "the run goes on, its values are kept and retried in the background"
            )

    # -- the run's state in the tracker, from other threads ----------------------------------------

    def reopen_run(self) -> None:
        """The run opens (again) in this process: its tracker must close it again at the end.

        Called by the run's owner before delivery starts; never by ``trackhook sync``.
        """
        try:
            self._positions.reopen()
        except RunStoreError as trouble:
            self._store_failed(trouble)

    def closed_in_tracker(self) -> bool:
        """Whether the run has been closed in this tracker (by this process or another)."""
        return self._positions.closed_status() is not None

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

    # -- the report at the end -------------------------------------------------------------------

    def give_up(self, finish: Finish | None, *, quiet: bool = False) -> None:
        """Report now, from the closing thread, while a pass is still stuck in a hook.

        A hook that never returns (a server that accepts the connection and never answers, a
        client library blocked at interpreter exit) must not make the run log claim that
        everything was delivered: what the tracker has not acknowledged is counted and reported
        as undelivered, and stays in the spool for ``trackhook sync``. What it acknowledged is
        recorded first, so that the sync does not send it again.
        """
        # What could not be saved counts below as undelivered: this is the user's closing thread.
        with suppress(OSError, UnsafeStorePath):
            self._progress.save()
        self.finish_report(finish, out_of_time=True, quiet=quiet)

    def finish_report(self, finish: Finish | None, *, out_of_time: bool, quiet: bool) -> None:
        """Count what the tracker has not received, say why if time ran out, and warn.

        Made once: whichever of the delivery thread and the closing thread (``give_up``) comes
        second returns only once the counts are in the report that the run log records. No
        warning when ``quiet`` (``on_error: raise`` stopped the run) or when the run is not
        closing (a sync while the owner runs: the owner delivers the rest, and says so).
        """
        status = finish.status if finish is not None else None
        with self._report_lock:
            if self._reported:
                return
            spooled = self._undelivered_in_spool()
            held, lost = self._never_spooled()
            self.report.undelivered = spooled + held + lost
            left_open = status is not None and not self.closed_in_tracker()
            if finish is not None and out_of_time and (self.report.undelivered or left_open):
                self.report.last_error = self._why_out_of_time(finish)
            self._reported = True
        if quiet or status is None:
            return
        run_id = self.run_info.run_id
        last_error = f" (last error: {self.report.last_error})" if self.report.last_error else ""
        if self.report.undelivered:
            warn_in_background(
                f"tracker {self.tracker.name!r} could not deliver {self.report.undelivered} "
                f"values of run {run_id!r}{last_error}: "
                + "; ".join(self._where_undelivered(spooled, held, lost))
            )
        elif left_open:
            warn_in_background(
                f"tracker {self.tracker.name!r} has not closed run {run_id!r}{last_error}; "
                f"close it with: trackhook sync {run_id}"
            )

    def flush_own_spool(self) -> None:
        """Hand this process's spool to the disk, so that the report counts what it holds."""
        if self._own is not None:
            self._own.flush()

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

    def _why_out_of_time(self, finish: Finish) -> str:
        """Why delivery stopped before delivering everything: said in ``last_error``."""
        now = time.monotonic()
        if self._opening_since is not None:
            return f"still opening the run after {now - self._opening_since:.0f} s"
        idle = now - max(self._last_progress, finish.started)
        if self.report.last_error is not None:  # failing still: a success would have cleared it
            return f"gave up after {idle:.0f} s without progress: {self.report.last_error}"
        if now - self._last_progress < _PROGRESS_WINDOW:
            waited = finish.deadline + self.settings.patience - finish.started
            return (
                f"still delivering when the wait of {waited:.0f} s (timeout and patience) ran out"
            )
        return f"no progress for {idle:.0f} s: a hook of the tracker did not return"

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
