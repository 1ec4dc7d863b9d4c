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

import trackhook
from trackhook.testing import RecordingTracker, recording

CALLS = 20_000
ROUNDS = 7
TEN = {f"metric_{index}": 0.5 for index in range(10)}


def per_call_us(loop: Callable[[], None]) -> float:
    """Median, over rounds, of one round's time divided by its calls, in microseconds."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        loop()
        rounds.append((time.perf_counter_ns() - start) / CALLS / 1000)
    return statistics.median(rounds)


def tracked(config: dict[str, object], values: dict[str, float]) -> float:
    with trackhook.start_run(config=config):
        step = iter(range(10**9))

        def loop() -> None:
            for _ in range(CALLS):
                trackhook.track_this(step=next(step), **values)

        return per_call_us(loop)


def floor(values: dict[str, float]) -> float:
    with tempfile.TemporaryFile("w") as file:
        step = iter(range(10**9))

        def loop() -> None:
            for _ in range(CALLS):
                file.write(json.dumps({"s": next(step), "v": values}) + "\n")

        return per_call_us(loop)


def process_ms(statement: str) -> float:
    times = []
    for _ in range(15):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    os.chdir(tempfile.mkdtemp(prefix="trackhook-bench-"))
    do_nothing: dict[str, object] = {}
    with recording(RecordingTracker()):
        recorder: dict[str, object] = {"experiment_tracker": {"type": "recording"}}
        rows = []
        for label, values in (("1 value", {"loss": 0.5}), ("10 values", TEN)):
            base = floor(values)
            rows.append((label, "do-nothing", tracked(do_nothing, values), base))
            rows.append((label, "recording", tracked(recorder, values), base))
    print(f"track_this, caller side, median of {ROUNDS} rounds of {CALLS} calls (µs per call)")
    print(f"{'values':<10} {'tracker':<11} {'track_this':>10} {'floor':>7} {'ratio':>6}")
    for label, tracker, cost, base in rows:
        print(f"{label:<10} {tracker:<11} {cost:>10.2f} {base:>7.2f} {cost / base:>6.2f}")
    print("floor: json.dumps of the same values and file.write of the line, per call")
    pluggy_ms = process_ms("import pluggy")
    trackhook_ms = process_ms("import trackhook")
    print(
        f"\nwhole process, median of 15: python -c 'import pluggy' {pluggy_ms:.1f} ms, "
        f"'import trackhook' {trackhook_ms:.1f} ms, ratio {trackhook_ms / pluggy_ms:.2f}"
    )


if __name__ == "__main__":
    main()
