"""The delivery thread: one per tracker, repeating ``TrackerDelivery.deliver_once``.

The thread holds no delivery logic of its own: it runs passes, applies the retry policy
(``backoff.RetryPolicy``) and ``on_error: raise`` to what each pass returns, waits between passes,
and takes ``finish`` and ``give_up`` from other threads.

``trackhook sync`` builds the same thread, over a delivery without a spool of its own, rather than
calling ``deliver_once`` in its own thread: a hook that never returns would hold that thread, and
only a thread that can be abandoned keeps ``trackhook sync --timeout`` a hard limit.
``wait_for_workers`` abandons those still in a hook when their time is up, after reporting for
them (``give_up``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from trackhook.backoff import Backoff, RetryPolicy
from trackhook.delivery import Ending, Finish, PassOutcome, TrackerDelivery

if TYPE_CHECKING:
    from trackhook.records import Status
    from trackhook.report import DeliveryReport
    from trackhook.trackers import LoadedTracker

__all__ = ["TrackerWorker", "wait_for_workers"]

_GRACE_AFTER_TIMEOUT = 5.0
"""Seconds a worker gets beyond its time to return from the hook it is in."""
_JOIN_SLICE = 0.1


def wait_for_workers(workers: Iterable[TrackerWorker], timeout: float) -> None:
    """Wait for finishing workers together; report those still stuck in a hook.

    Each gets ``timeout`` seconds and a grace to return from its hook, and more while it is still
    opening the run or accepting values (see ``TrackerDelivery.give_up_at``).
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


class TrackerWorker(threading.Thread):
    """Delivers one run to one tracker in the background, pass after pass, until it finishes.

    ``on_fatal(tracker_name, error)`` is called when a tracker configured with ``on_error:
    raise`` fails: the thread then stops, and ``fatal`` holds the error.
    """

    def __init__(
        self,
        delivery: TrackerDelivery,
        *,
        on_fatal: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        super().__init__(name=f"trackhook-{delivery.tracker.name}", daemon=True)
        self.delivery = delivery
        self.opened = delivery.opened
        self.fatal: BaseException | None = None
        self._on_fatal = on_fatal
        self._finish: Finish | None = None
        self._finishing = threading.Event()
        """Set with ``_finish``: ends a pass that runs without a deadline."""
        self._wake = threading.Event()

    @property
    def tracker(self) -> LoadedTracker:
        return self.delivery.tracker

    @property
    def report(self) -> DeliveryReport:
        return self.delivery.report

    # -- control, from other threads -------------------------------------------------------------

    def finish(self, status: Status | None, timeout: float, *, at_exit: bool = False) -> None:
        """Deliver what is left within ``timeout`` seconds, then close with ``status`` (if any).

        A tracker still opening the run (a cold start: importing its library, creating its
        database) or still accepting values gets up to ``DeliverySettings.patience`` seconds more,
        so that a slow start does not leave the run unclosed; one failing or stuck gets no more.

        ``at_exit``: the interpreter is exiting, when a tracker library may no longer start
        threads or register exit handlers. A failure is then retried once, not until
        ``timeout`` (``RetryPolicy``): what is left stays in the spool for ``trackhook sync``.
        """
        started = time.monotonic()
        self._finish = Finish(status, started, started + timeout, at_exit)
        self._finishing.set()
        self._wake.set()

    def give_up_at(self) -> float:
        """When (``time.monotonic``) the worker stops, unless it makes progress before then:
        never before ``finish``."""
        finish = self._finish
        return float("inf") if finish is None else self.delivery.give_up_at(finish.deadline)

    def give_up(self) -> None:
        """Report now, from the closing thread, while this thread is still stuck in a hook."""
        self.delivery.give_up(self._finish, quiet=self.fatal is not None)

    def run_log_entry(self) -> dict[str, Any]:
        return self.delivery.run_log_entry()

    def closed_in_tracker(self) -> bool:
        return self.delivery.closed_in_tracker()

    # -- the thread --------------------------------------------------------------------------------

    def run(self) -> None:
        out_of_time = self._loop()
        self.delivery.flush_own_spool()
        self.delivery.finish_report(
            self._finish, out_of_time=out_of_time, quiet=self.fatal is not None
        )

    def _loop(self) -> bool:
        """Pass after pass until the delivery ends; returns whether it ran out of time."""
        retry = RetryPolicy(Backoff(self.delivery.settings.max_backoff))
        while True:
            finish = self._finish
            outcome = self.delivery.deliver_once(
                finish.deadline if finish is not None else None,
                status=finish.status if finish is not None else None,
                interrupt=self._finishing,
            )
            if outcome.ending in (Ending.DONE, Ending.OUT_OF_TIME):
                return outcome.ending is Ending.OUT_OF_TIME
            if not self._try_again(outcome, retry, finish):
                return False
            if finish is not None and self.delivery.time_is_up(finish.deadline):
                return True
            time_left = None if finish is None else self.give_up_at() - time.monotonic()
            wait = retry.wait(self.delivery.settings.interval, time_left)
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _try_again(self, outcome: PassOutcome, retry: RetryPolicy, finish: Finish | None) -> bool:
        """Apply the retry policy, and ``on_error: raise``, to a pass that did not end the
        delivery: whether to run another."""
        if outcome.ending is Ending.STORE_FAILED:
            return retry.store_failed(finishing=finish is not None)
        if outcome.ending is Ending.TRACKER_FAILED:
            assert outcome.error is not None
            if self.tracker.settings.on_error == "raise":
                self._fail(outcome.error)
                return False
            self.delivery.retrying()
            return retry.tracker_failed(at_exit=finish is not None and finish.at_exit)
        retry.succeeded()
        return True

    def _fail(self, error: BaseException) -> None:
        """``on_error: raise``: the run stops delivering to this tracker and raises ``error``."""
        self.fatal = error
        if self._on_fatal is not None:
            self._on_fatal(self.tracker.name, error)
