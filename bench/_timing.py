"""What the tracker benchmarks measure of one round, and how they print it."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """One round: seconds the caller spent tracking, and until the tracker held every value."""

    caller: float
    end_to_end: float


def caller(timing: Timing) -> float:
    return timing.caller


def end_to_end(timing: Timing) -> float:
    return timing.end_to_end


def ms(timings: list[Timing], part: Callable[[Timing], float]) -> str:
    """``median / best`` of ``part`` over the rounds, in milliseconds."""
    values = [part(timing) for timing in timings]
    return f"{statistics.median(values) * 1000:.1f} / {min(values) * 1000:.1f} ms"
