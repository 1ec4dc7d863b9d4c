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

The parts, each testable without a thread: ``fitting`` (spool entries to records that fit the
tracker's limits), ``batching`` (how many records one hook call takes), ``progress`` (how far the
tracker has received a spool file, written down), ``backoff`` (the retry policy) and ``report``
(the counts). ``TrackerWorker.deliver_once`` is one pass; the thread only repeats it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.backoff import Backoff
from trackhook.batching import batch_end
from trackhook.errors import TrackhookWarning, ValuesRejected, warn_in_background
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
    "DeliveryReport",
    "TrackerWorker",
    "TrackhookWarning",
    "count_values",
    "wait_for_workers",
]


_MAX_REASON_LENGTH = 200


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
        1
        for entry in entries
        for key, value in entry.values.items()
        for _ in flatten(key, value, entry.files)
    )


class Outcome(Enum):
    """How one delivery pass ended (see ``TrackerWorker.deliver_once``)."""

    MORE_TO_DO = "more to do"
    """The run goes on: later passes deliver what is tracked next."""
    DONE = "done"
    """Finishing: everything was delivered and the run closed in the tracker (if asked)."""
    OUT_OF_TIME = "out of time"
    """Finishing: time ran out; what is left stays in the spool for ``trackhook sync``."""


class TrackerWorker(threading.Thread):
    """Delivers one run to one tracker, in the background.

    ``own_spool`` is this process's spool when it owns the run: flushed before each pass, and the
    run opened in the tracker at once. ``trackhook sync`` passes ``None``: it only delivers.
    """

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
        self._on_fatal = on_fatal
        self._on_opened = on_opened
        self._positions = store.positions(run.run_id, tracker.name)
        self._fitter = Fitter(tracker.limits, self._tell_renamed, store.root)
        self._warned = False
        self._warned_of_rejection = False
        self._progress = SendProgress(self._positions)
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
        self._report_lock = threading.Lock()
        self._reported = False

    # -- control, from other threads -------------------------------------------------------------

    def reopen_run(self) -> None:
        """The run opens (again) in this process: its tracker must close it again at the end.

        Called by the run's owner before the thread starts; never by ``trackhook sync``.
        """
        try:
            self._positions.reopen()
        except RunStoreError as trouble:
            self._store_failed(trouble)

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
            self._progress.save()
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
        backoff = Backoff(self.settings.max_backoff)
        failures_at_exit = 0
        while True:
            finishing = self._finish.is_set()
            outcome = Outcome.MORE_TO_DO
            try:
                outcome = self.deliver_once(finishing)
                backoff.succeeded()
            except RunStoreError as trouble:
                self._store_failed(trouble)
                if finishing:
                    return  # waiting would not make the store writable: report now
                backoff.failed()
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
                backoff.failed()
            if outcome is not Outcome.MORE_TO_DO:
                return
            if finishing and self._out_of_time():
                self._ran_out_of_time = True
                return
            wait = backoff.current or self.settings.interval
            if finishing:
                wait = min(backoff.current, max(self.give_up_at() - time.monotonic(), 0.0))
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

    def deliver_once(self, finishing: bool) -> Outcome:
        """Deliver every spool file of the run that no other process is delivering right now.

        Other processes of the run (a multiprocessing pool, a shell task running Python) only
        spool; the run's owner delivers their files too. A file is claimed with a lock for the
        time of its delivery, so ``trackhook sync`` or another owner never sends it twice.

        Finishing (after ``finish``), the pass also closes the run in the tracker when all is
        delivered. Failures raise (the caller retries); the returned ``Outcome`` says whether
        another pass is needed.
        """
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
            return Outcome.MORE_TO_DO
        if not complete or self._out_of_time():
            self._ran_out_of_time = True
            return Outcome.OUT_OF_TIME  # what is left stays for `trackhook sync`, which closes
        status = self._finish_status
        if status is not None and not self.busy_spools and self._positions.closed_status() is None:
            self._ensure_open()
            self.tracker.hooks.close_run(self.run_info, status)
            self.report.recover()
            self._positions.mark_closed(status)
        return Outcome.DONE

    def _out_of_time(self) -> bool:
        return self._finish.is_set() and time.monotonic() >= self.give_up_at()

    def _drain(self, path: Path) -> bool:
        """Deliver ``path`` from the position on disk (read under the claim) to its end.

        Returns False when time ran out first. Every send leaves its progress on disk, so the
        position read here is exactly where the last send, of this process or another, stopped
        (or, if that could not be written, this process remembers it).
        """
        position = self._progress.resume_at(path)
        while not self._out_of_time():
            prepared = self._fitter.read_batch(path, position)
            if prepared is None:
                return True
            self._send(prepared)
            if prepared.sent < len(prepared.records):
                return False
            position = prepared.position()
        return False

    def _tighten(self, prepared: FittedLines, demand: TighterLimitsRequired) -> None:
        """Remake the records with the tighter limits the tracker asked for."""
        self._fitter.tighten(prepared, demand)
        self.report.retried += 1

    # -- handing records over -------------------------------------------------------------------

    def _send(self, prepared: FittedLines) -> None:
        """Offer ``prepared``'s records batch by batch until all are handled or time runs out.

        However the send stops, what the tracker accepted is recorded on disk before this returns
        or raises.
        """
        try:
            while prepared.sent < len(prepared.records) and not self._out_of_time():
                end = batch_end(
                    prepared.records,
                    prepared.sent,
                    self._fitter.limits,
                    batches=self.tracker.hooks.batches,
                )
                try:
                    self._offer(prepared, end)
                except TighterLimitsRequired as demand:
                    self._tighten(prepared, demand)
                    continue
                # a file is costly to send twice: its position is written as soon as it is sent
                sent_a_file = isinstance(prepared.records[end - 1], FileRecord)
                if self.tracker.hooks.batches or sent_a_file or self._progress.save_due():
                    self._progress.save()
        finally:
            self._progress.save()

    def _offer(self, prepared: FittedLines, end: int) -> None:
        """Hand the records from ``prepared.sent`` to ``end`` to the tracker.

        Where it refuses them for their content (``ValuesRejected``), the two halves are offered
        in turn, down to single values, which are set aside: the values next to a refused one
        still arrive, and an outage (any other exception) stops the send as usual.
        """
        batch = prepared.records[prepared.sent : end]
        self._ensure_open()
        try:
            self.tracker.hooks.log_records(self.run_info, batch)
        except ValuesRejected as refusal:
            if len(batch) == 1:
                self._set_aside(prepared, refusal)
                return
            middle = prepared.sent + len(batch) // 2
            self._offer(prepared, middle)
            self._offer(prepared, end)
            return
        renamed, truncated = prepared.count_flags(end)
        self.report.renamed += renamed
        self.report.truncated += truncated
        received = sum(map(self.tracker.hooks.receives, batch))
        self.report.delivered += received
        self.report.skipped += len(batch) - received
        self._handled(prepared, end)

    def _set_aside(self, prepared: FittedLines, refusal: ValuesRejected) -> None:
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

    def _handled(self, prepared: FittedLines, end: int) -> None:
        """The records up to ``end`` need never be offered again: remember, to save soon."""
        self._progress.handled(prepared, end)
        self._last_progress = time.monotonic()
        self.report.recover()

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

    def _tell_renamed(self, key: str, stored: str, why: str | None) -> None:
        self._warn(
            f"tracker {self.tracker.name!r} cannot store the key {key!r} "
            f"({why}); it is stored as {stored!r} (the run log keeps the original)"
        )

    def _warn(self, message: str) -> None:
        warn_in_background(message)
