"""What a delivery thread does after a pass: how long it waits before the next, or whether it
stops trying (the retry policy, apart from the thread so that it is tested without one)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIRST_WAIT", "TRIES_AT_EXIT", "Backoff", "RetryPolicy"]

FIRST_WAIT = 0.25
"""Seconds before the first retry: each failure in a row doubles it, up to ``most``."""

TRIES_AT_EXIT = 2
"""Failed passes after which a delivery gives up at interpreter exit (see ``RetryPolicy``)."""


@dataclass
class Backoff:
    """Exponential backoff: doubled at each failure in a row, reset by a success."""

    most: float
    """The longest wait (``DeliverySettings.max_backoff``)."""
    current: float = 0.0
    """Seconds to wait before the next try; 0 after a success."""

    def failed(self) -> float:
        """One more failure in a row: the wait before the next try."""
        self.current = min(max(self.current * 2, FIRST_WAIT), self.most)
        return self.current

    def succeeded(self) -> None:
        self.current = 0.0


@dataclass
class RetryPolicy:
    """Whether to try again after a failed pass, and how long to wait before the next pass.

    At interpreter exit a tracker library may no longer start threads or register exit handlers:
    a tracker failing there is tried ``TRIES_AT_EXIT`` times, not until the timeout, so that the
    user's process is not held up by a tracker that cannot work any more. Trackhook's own store
    failing while the run finishes is not waited out either: waiting would not make it writable.
    """

    backoff: Backoff
    failures_at_exit: int = 0

    def succeeded(self) -> None:
        self.backoff.succeeded()

    def tracker_failed(self, *, at_exit: bool) -> bool:
        """The tracker failed a pass: whether to try again (after a longer wait)."""
        if at_exit:
            self.failures_at_exit += 1
            if self.failures_at_exit == TRIES_AT_EXIT:
                return False
        self.backoff.failed()
        return True

    def store_failed(self, *, finishing: bool) -> bool:
        """Trackhook's store failed a pass: try again while the run goes on, not at its end."""
        if finishing:
            return False
        self.backoff.failed()
        return True

    def wait(self, interval: float, time_left: float | None) -> float:
        """Seconds before the next pass: the backoff after a failure, else ``interval``.

        Finishing (``time_left`` until the delivery gives up is given), at once after a success
        and never beyond the time left.
        """
        if time_left is None:
            return self.backoff.current or interval
        return min(self.backoff.current, max(time_left, 0.0))
