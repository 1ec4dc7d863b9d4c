"""What trackhook costs a TensorBoard user: tensorboardX's ``add_scalar`` against ``track_this``.

Both sides write the same scalars, one per call at increasing steps, into event files of a fresh
run folder, in the same process. tensorboardX is the reference because it installs without a GPU
stack (``torch.utils.tensorboard`` needs torch); its ``SummaryWriter`` is what most libraries
without TensorFlow write with. Reported, as the median and the best of several rounds:

- caller-side: the time spent inside the logging calls, what the training loop feels;
- end-to-end: from creating the writer / entering ``start_run`` until the writer is closed /
  ``start_run`` has exited with every value written and the run closed.

A first, untimed run of each side imports everything. After the rounds, the last run folder of
each side is read back with TensorBoard's own reader, to check that every value is there.

Run: ``nox -s bench``, or ``python bench/bench_tensorboard.py [--values 10000] [--rounds 7]`` in an
environment with ``trackhook``, ``trackhook-tensorboard`` and ``tensorboardX`` installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _timing import Timing, alternated, caller, end_to_end, ms


def direct(values: int, folder: Path) -> Timing:
    from tensorboardX import SummaryWriter

    started = time.perf_counter()
    writer = SummaryWriter(str(folder))
    calls = time.perf_counter()
    for step in range(values):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    caller_side = time.perf_counter() - calls
    writer.close()
    return Timing(caller_side, time.perf_counter() - started)


def with_trackhook(values: int, folder: Path) -> Timing:
    import trackhook

    config = {
        "experiment_tracker": {"type": "tensorboard", "config": {"log_dir": str(folder)}},
        "run_log_store": str(folder / "run-logs"),
    }
    started = time.perf_counter()
    with trackhook.start_run(run_id="run", tag="bench", config=config):
        calls = time.perf_counter()
        for step in range(values):
            trackhook.track_this(step=step, loss=1.0 / (step + 1))
        caller_side = time.perf_counter() - calls
    return Timing(caller_side, time.perf_counter() - started)


def stored_points(folder: Path) -> int:
    """How many ``loss`` points TensorBoard reads from the run folder ``folder``."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator

    run = accumulator.EventAccumulator(str(folder), size_guidance={accumulator.TENSORS: 0})
    run.Reload()
    return len(run.Tensors("loss"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000, help="values per run (10000)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side (7)")
    options = parser.parse_args()

    sides: dict[str, Callable[[int, Path], Timing]] = {
        "tensorboardX": direct,
        "trackhook": with_trackhook,
    }
    results: dict[str, list[Timing]] = {label: [] for label in sides}
    with tempfile.TemporaryDirectory(prefix="bench-tensorboard-") as temporary:
        root = Path(temporary)
        os.chdir(root)
        for label, side in sides.items():
            side(10, root / f"warm-up-{label}")
        order = list(sides.items())
        for round_number in range(options.rounds):
            for label, side in alternated(order, round_number):
                results[label].append(side(options.values, root / f"{label}-{round_number}"))
        last = options.rounds - 1
        stored = {
            "tensorboardX": stored_points(root / f"tensorboardX-{last}"),
            "trackhook": stored_points(root / f"trackhook-{last}" / "bench" / "run"),
        }

    import tensorboard
    import tensorboardX

    print(
        f"{options.values} values, {options.rounds} rounds per side, tensorboard "
        f"{tensorboard.__version__}, tensorboardX {tensorboardX.__version__}"
    )
    print(f"{'':14} {'caller-side (median / best)':>30} {'end-to-end (median / best)':>30}")
    for label, timings in results.items():
        print(f"{label:14} {ms(timings, caller):>30} {ms(timings, end_to_end):>30}")
    for summary in (statistics.median, min):
        direct_timings, trackhook_timings = results["tensorboardX"], results["trackhook"]
        caller_ratio = summary(map(caller, direct_timings)) / summary(
            map(caller, trackhook_timings)
        )
        end_ratio = summary(map(end_to_end, trackhook_timings)) / summary(
            map(end_to_end, direct_timings)
        )
        print(
            f"{summary.__name__:>6}: caller-side {caller_ratio:.1f}x below add_scalar; "
            f"end-to-end {end_ratio:.2f}x add_scalar"
        )
    print(
        "read back: "
        + ", ".join(f"{label} {count} of {options.values}" for label, count in stored.items())
    )


if __name__ == "__main__":
    main()
