"""What happened to one tracker's values in one process: the counts recorded in the run log."""

from __future__ import annotations

from dataclasses import dataclass, field

from trackhook import formats
from trackhook.runlog import add_rejected_key, add_rejected_reason

__all__ = ["DeliveryReport"]


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
        add_rejected_reason(self.rejected_reasons, reason, 1)
        add_rejected_key(self.rejected_keys, key)

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
