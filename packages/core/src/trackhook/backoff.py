"""How long a worker waits before retrying a tracker (or trackhook's store) that failed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]

FIRST_WAIT = 0.25
"""Seconds before the first retry: each failure in a row doubles it, up to ``most``."""


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
