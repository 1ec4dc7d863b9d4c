"""How much trackhook costs a W&B user: direct ``run.log`` against ``trackhook.track_this``.

Both sides log the same values, one per call at increasing steps, into a W&B run in offline mode
(no network), in the same process. Reported, as the median and the best of several rounds:

- caller-side: the time spent inside the logging calls, what the training loop feels;
- end-to-end: from opening the run (``wandb.init`` / entering ``start_run``) until the run is
  finished (``run.finish()`` returned / ``start_run`` exited with everything delivered).

Goal (issue 5): trackhook's caller-side time at least 10x below direct ``run.log``, end-to-end
within 1.2x. A first, untimed run of each side starts W&B's service process and imports
everything, so that no round pays for it.

Run: ``nox -s bench``, or ``python bench/bench_wandb.py [--values 2000] [--rounds 7]`` in an
environment with ``trackhook`` and ``trackhook-wandb`` installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _timing import Timing, alternated, caller, end_to_end, ms

_SETTLE_SECONDS = 1.0


def direct(values: int, folder: Path, name: str) -> Timing:
    import wandb

    from trackhook_wandb import WandbConfig

    # The same W&B settings as trackhook-wandb's defaults, so that only the logging path differs.
    settings = wandb.Settings(**WandbConfig().wandb_settings())
    started = time.perf_counter()
    run = wandb.init(
        project="bench",
        id=name,
        name=name,
        mode="offline",
        dir=folder,
        reinit="create_new",
        settings=settings,
    )
    calls = time.perf_counter()
    for step in range(values):
        run.log({"loss": 1.0 / (step + 1)})
    caller_side = time.perf_counter() - calls
    run.finish()
    return Timing(caller_side, time.perf_counter() - started)


def with_trackhook(values: int, folder: Path, name: str) -> Timing:
    import trackhook

    config = {
        "experiment_tracker": {"type": "wandb", "config": {"mode": "offline", "dir": str(folder)}},
        "run_log_store": str(folder / "run-logs"),
    }
    started = time.perf_counter()
    with trackhook.start_run(run_id=name, tag="bench", config=config):
        calls = time.perf_counter()
        for step in range(values):
            trackhook.track_this(step=step, loss=1.0 / (step + 1))
        caller_side = time.perf_counter() - calls
    return Timing(caller_side, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=2000, help="values per run (2000)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side (7)")
    options = parser.parse_args()

    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    with tempfile.TemporaryDirectory(prefix="bench-wandb-") as temporary:
        root = Path(temporary)
        os.environ["WANDB_DIR"] = str(root)
        os.environ["WANDB_CONFIG_DIR"] = str(root / "config")
        os.environ["WANDB_CACHE_DIR"] = str(root / "cache")
        os.chdir(root)
        direct(10, root / "warm-up", "warm-up")
        with_trackhook(10, root / "warm-up-trackhook", "warm-up-trackhook")
        results: dict[str, list[Timing]] = {"direct run.log": [], "trackhook": []}
        for round_number in range(options.rounds):
            sides = [("direct run.log", direct), ("trackhook", with_trackhook)]
            for label, side in alternated(sides, round_number):
                name = f"{label.split()[0]}-{round_number}"
                results[label].append(side(options.values, root / name, name))
                # run.finish() returns before W&B's service has written the run to disk: let it
                # settle, so that the next measurement does not pay for this one.
                time.sleep(_SETTLE_SECONDS)

    import wandb

    print(f"{options.values} values, {options.rounds} rounds per side, wandb {wandb.__version__}")
    print(f"{'':16} {'caller-side (median / best)':>30} {'end-to-end (median / best)':>30}")
    for label, timings in results.items():
        print(f"{label:16} {ms(timings, caller):>30} {ms(timings, end_to_end):>30}")
    direct_timings, trackhook_timings = results["direct run.log"], results["trackhook"]
    for summary in (statistics.median, min):
        caller_ratio = summary(map(caller, direct_timings)) / summary(
            map(caller, trackhook_timings)
        )
        end_ratio = summary(map(end_to_end, trackhook_timings)) / summary(
            map(end_to_end, direct_timings)
        )
        print(
            f"{summary.__name__:>6}: caller-side {caller_ratio:.1f}x below direct run.log "
            f"(goal >= 10x); end-to-end {end_ratio:.2f}x direct run.log (goal <= 1.2x)"
        )


if __name__ == "__main__":
    main()
