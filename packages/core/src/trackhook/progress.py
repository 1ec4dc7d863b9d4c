"""How far a tracker has received the spool file being sent to it, and writing that down.

A position is written after each accepted batch (for one-value-per-call trackers at most every
``SAVE_INTERVAL`` seconds while all goes well) and whenever a send stops. What was accepted but
could not be written (a full disk) is remembered, so that this process never offers it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from trackhook.fitting import FittedLines
from trackhook.store import SpoolPosition, TrackerPositions

__all__ = ["SAVE_INTERVAL", "SendProgress"]

SAVE_INTERVAL = 0.5
"""Seconds between positions written for one-value-per-call trackers while all goes well."""


class SendProgress:
    """One tracker's progress through a run's spool files, written to its ``TrackerPositions``.

    ``save`` is called from the delivery thread and, through ``TrackerDelivery.give_up``, from
    the closing thread while the delivery thread is stuck in a hook: under a lock, and always the
    latest progress, so that a position on disk only ever moves forward.
    """

    def __init__(
        self, positions: TrackerPositions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._positions = positions
        self._clock = clock
        self._lock = threading.Lock()
        self._unsaved: FittedLines | None = None
        """The send whose handled values are not on disk yet."""
        self._last_save = float("-inf")

    def resume_at(self, path: Path) -> SpoolPosition:
        """Where to send ``path`` from: its position on disk, or further if this process handled
        more than it could write down."""
        position = self._positions.position(path)
        unsaved = self._unsaved
        if unsaved is not None and unsaved.path == path:
            position = max(position, unsaved.position())
        return position

    def handled(self, fitted: FittedLines, end: int) -> None:
        """The records of ``fitted`` up to ``end`` need never be offered again: save them soon."""
        with self._lock:
            fitted.sent = end
            self._unsaved = fitted

    def save(self) -> None:
        """Write down the latest progress, if any is not on disk yet."""
        with self._lock:
            fitted = self._unsaved
            if fitted is not None:
                self._positions.save(fitted.path, fitted.position())
                self._unsaved = None

    def save_due(self) -> bool:
        """Whether ``SAVE_INTERVAL`` has passed since this last said so (a send that stops
        saves at once, whatever this says)."""
        now = self._clock()
        if now - self._last_save < SAVE_INTERVAL:
            return False
        self._last_save = now
        return True
