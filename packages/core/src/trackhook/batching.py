"""How many records go into one hook call, under a tracker's declared batch limits."""

from __future__ import annotations

from collections.abc import Sequence

from trackhook.limits import TrackerLimits
from trackhook.records import FileRecord, MetricRecord, ParamRecord

__all__ = ["DEFAULT_BATCH", "batch_end", "batch_size"]

DEFAULT_BATCH = 1000
"""Values in one batch when the tracker declares no limit."""


def batch_size(limits: TrackerLimits) -> int:
    """The most values one batch holds."""
    return limits.max_values_per_batch or DEFAULT_BATCH


def batch_end(
    records: Sequence[MetricRecord | ParamRecord | FileRecord],
    start: int,
    limits: TrackerLimits,
    *,
    batches: bool,
) -> int:
    """The end (exclusive) of the batch that starts at ``start``.

    A tracker without a batch hook gets one value per call: a failure in the middle retries from
    that value on, so a value it accepted is never offered again. A file is a call of its own
    (``trackhook_log_file``), whatever the tracker.
    """
    if not batches or isinstance(records[start], FileRecord):
        return start + 1
    most = batch_size(limits)
    if limits.max_metrics_per_batch is None and limits.max_params_per_batch is None:
        return _before_a_file(records, start, min(start + most, len(records)))
    most_metrics = limits.max_metrics_per_batch or most
    most_params = limits.max_params_per_batch or most
    metrics = params = 0
    end = start
    while end < len(records) and end - start < most:
        if isinstance(records[end], FileRecord):
            break
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


def _before_a_file(
    records: Sequence[MetricRecord | ParamRecord | FileRecord], start: int, end: int
) -> int:
    """``end``, or the first file's index between ``start`` and it (a file is a call of its own)."""
    for index in range(start, end):
        if type(records[index]) is FileRecord:
            return index
    return end
