"""The built-in ``do-nothing`` tracker: the run log alone records the values."""

from __future__ import annotations

from trackhook._markers import hookimpl
from trackhook.records import MetricRecord, ParamRecord, RunInfo

__all__ = ["DoNothingTracker"]


class DoNothingTracker:
    """Accepts every value and stores nothing; the default when no tracker is configured."""

    def __init__(self, config: object = None) -> None:
        del config

    @hookimpl
    def trackhook_log_batch(
        self, run: RunInfo, metrics: list[MetricRecord], params: list[ParamRecord]
    ) -> None:
        del run, metrics, params
