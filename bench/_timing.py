"""What the tracker benchmarks measure of one round, and how they print it."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Side = TypeVar("Side")


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


def alternated(sides: Sequence[Side], round_number: int) -> list[Side]:
    """The sides of one round, in turn first and second, so that neither always runs on a
    warmer process (or a quieter machine)."""
    return list(sides) if round_number % 2 == 0 else list(sides)[::-1]
