"""The built-in ``do-nothing`` tracker: the run log alone records the values."""

from __future__ import annotations

__all__ = ["DoNothingTracker"]


class DoNothingTracker:
    """Implements no hook: the default when no tracker is configured.

    A tracker without value hooks costs no delivery work; the run's spool is still written, so
    ``trackhook sync --config ...`` can send the run to a real tracker later.
    """

    def __init__(self, config: object = None) -> None:
        del config
