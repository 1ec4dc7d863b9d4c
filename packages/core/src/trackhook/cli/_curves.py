"""The curves that ``trackhook plot`` draws, thinned to a bounded number of points per metric.

A metric of a long run holds millions of steps, more than a figure can show or memory should hold:
each curve is read in step order, a key at a time, and kept as at most ``CURVE_POINTS`` points.
The steps are cut into that many buckets, half as many as points, and each bucket keeps its lowest
and its highest value (in step order), so that a spike or a dip survives the thinning, which an
average or every n-th point would smooth away or miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["CURVE_POINTS", "Curve", "Thinning"]

CURVE_POINTS = 4_000
"""The most points kept of one curve: twice the width in pixels of a drawn panel, and more."""


@dataclass
class Curve:
    """One metric as ``plot`` draws it: ``steps`` and ``values`` in step order, thinned."""

    key: str
    tracked: int
    """How many values the metric holds, before thinning."""
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class Thinning:
    """Gathers a curve of ``count`` values given in step order, into at most ``CURVE_POINTS``."""

    def __init__(self, key: str, count: int) -> None:
        self.curve = Curve(key, count)
        self._buckets = max(CURVE_POINTS // 2, 1)
        self._seen = 0
        self._low: tuple[int, float] | None = None
        self._high: tuple[int, float] | None = None

    def add(self, step: int, value: float) -> None:
        if self.curve.tracked <= CURVE_POINTS:
            self._keep(step, value)
            return
        value = float(value)
        if self._low is None or _below(value, self._low[1]):
            self._low = (step, value)
        if self._high is None or _below(self._high[1], value):
            self._high = (step, value)
        self._seen += 1
        bucket_end = (len(self.curve.steps) // 2 + 1) * self.curve.tracked // self._buckets
        if self._seen >= bucket_end or self._seen == self.curve.tracked:
            self._close_bucket()

    def _close_bucket(self) -> None:
        """Keep the bucket's lowest and highest value, in step order (the same point twice when
        they are one)."""
        assert self._low is not None
        assert self._high is not None
        for step, value in sorted((self._low, self._high)):
            self._keep(step, value)
        self._low = self._high = None

    def _keep(self, step: int, value: float) -> None:
        self.curve.steps.append(step)
        self.curve.values.append(float(value) if math.isfinite(value) else math.nan)


def _below(value: float, than: float) -> bool:
    """``value < than``, where NaN is neither low nor high (it is never kept over a number)."""
    if math.isnan(than):
        return not math.isnan(value)
    return value < than
