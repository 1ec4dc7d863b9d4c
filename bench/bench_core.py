"""The core's benchmark: the caller-side cost of track_this, against the floor of a plain write.

Run with ``nox -s bench`` (or ``python bench/bench_core.py`` where trackhook is installed). Figures
are medians over repeated rounds; nothing here is asserted, the figures go in the README.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from _timing import alternated

import trackhook
from trackhook.testing import RecordingTracker, recording

CALLS = 200_000
ROUNDS = 7
TEN = {f"metric_{index}": 0.5 for index in range(10)}


def per_call_us(loop: Callable[[int], None]) -> float:
    """One round's time divided by its calls, in microseconds."""
    start = time.perf_counter_ns()
    loop(CALLS)
    return (time.perf_counter_ns() - start) / CALLS / 1000


def tracked(config: dict[str, object], values: dict[str, float]) -> float:
    """One round in a run of its own: its tracker delivers in the background while the loop
    runs, a pass every 0.1 s (what it takes of the process is in the figure); the close is not
    timed."""
    with trackhook.start_run(config=config):

        def loop(calls: int) -> None:
            for step in range(calls):
                trackhook.track_this(step=step, **values)

        return per_call_us(loop)


def floor(values: dict[str, float]) -> float:
    with tempfile.TemporaryFile("w") as file:

        def loop(calls: int) -> None:
            for step in range(calls):
                file.write(json.dumps({"s": step, "v": values}) + "\n")

        return per_call_us(loop)


def compared(config: dict[str, object], values: dict[str, float]) -> tuple[float, float, float]:
    """Median track_this and floor costs over rounds that alternate them, and the median of the
    rounds' ratios."""
    costs: list[float] = []
    floors: list[float] = []
    sides = [lambda: costs.append(tracked(config, values)), lambda: floors.append(floor(values))]
    for round_number in range(ROUNDS):
        for side in alternated(sides, round_number):
            side()
    ratios = [cost / base for cost, base in zip(costs, floors, strict=True)]
    return statistics.median(costs), statistics.median(floors), statistics.median(ratios)


def process_ms(statement: str) -> float:
    times = []
    for _ in range(15):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    os.chdir(tempfile.mkdtemp(prefix="trackhook-bench-"))
    trackers: dict[str, dict[str, object]] = {
        "do-nothing": {},
        "recording": {"experiment_tracker": {"type": "recording"}},
    }
    rows = []
    with recording(RecordingTracker()):
        for label, values in (("1 value", {"loss": 0.5}), ("10 values", TEN)):
            for tracker, config in trackers.items():
                rows.append((label, tracker, *compared(config, values)))
    print(
        f"track_this, caller side, {ROUNDS} rounds of {CALLS} calls alternated with the floor "
        "(µs per call: medians; ratio: median of the rounds' ratios)"
    )
    print(f"{'values':<10} {'tracker':<11} {'track_this':>10} {'floor':>7} {'ratio':>6}")
    for label, tracker, cost, base, ratio in rows:
        print(f"{label:<10} {tracker:<11} {cost:>10.2f} {base:>7.2f} {ratio:>6.2f}")
    print("floor: json.dumps of the same values and file.write of the line, per call")
    pluggy_ms = process_ms("import pluggy")
    trackhook_ms = process_ms("import trackhook")
    print(
        f"\nwhole process, median of 15: python -c 'import pluggy' {pluggy_ms:.1f} ms, "
        f"'import trackhook' {trackhook_ms:.1f} ms, ratio {trackhook_ms / pluggy_ms:.2f}"
    )


if __name__ == "__main__":
    main()
