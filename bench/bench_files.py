"""What tracking a file or an image costs the caller: trackhook, and MLflow and W&B called directly.

Caller-side time only (what the training loop waits for), as the median and the best of several
rounds, for:

- a 1 MB and a 1 GB file: ``trackhook.track_this(f=trackhook.File(path))`` (the do-nothing
  tracker: what trackhook itself costs, the content copied into the run store and hashed), against
  ``mlflow.log_artifact(path)`` into an active run (a sqlite store, artifacts on the local disk)
  and W&B's ``run.save(path, policy="now")`` (offline);
- a 512x512 RGB image (a uint8 numpy array): ``trackhook.Image(array)`` (encoded as a PNG and
  held), against ``MlflowClient.log_image(run_id, array, key=..., step=...)`` and
  ``run.log({"sample": wandb.Image(array)})`` (offline).

Where trackhook delivers to MLflow or W&B, what their adapters do happens on a delivery thread,
after ``track_this`` has returned: the caller pays the trackhook figure alone.

Run: ``python bench/bench_files.py [--rounds 5] [--big-rounds 3]`` in an environment with
``trackhook``, ``mlflow``, ``wandb``, ``numpy`` and ``pillow`` (``nox -s bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

MB = 1 << 20


def timed(call: Callable[[], object], rounds: int) -> str:
    """``median / best`` of ``call``'s time over ``rounds``, after one untimed call."""
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return f"{statistics.median(times) * 1000:9.1f} / {min(times) * 1000:9.1f} ms"


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        for _ in range(size // MB):
            file.write(os.urandom(MB))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds for 1 MB and images (5)")
    parser.add_argument("--big-rounds", type=int, default=3, help="rounds for 1 GB (3)")
    options = parser.parse_args()
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    import numpy

    with tempfile.TemporaryDirectory(prefix="trackhook-bench-files-") as folder:
        root = Path(folder)
        os.chdir(root)
        image = numpy.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype="uint8")
        rows: list[tuple[str, str, str]] = []
        sides = _sides(root)
        try:
            for label, size, rounds in (
                ("1 MB file", MB, options.rounds),
                ("1 GB file", 1024 * MB, options.big_rounds),
            ):
                path = random_file(root / f"{label.replace(' ', '-')}.bin", size)
                for side, track in sides.items():
                    rows.append((label, side, timed(partial(track["file"], path), rounds)))
                    track["clean"]()
                path.unlink()
            for side, track in sides.items():
                rows.append(
                    ("512x512 image", side, timed(partial(track["image"], image), options.rounds))
                )
        finally:
            for track in sides.values():
                track["close"]()
    print(
        f"caller-side time per call, median / best ({options.rounds} rounds; "
        f"{options.big_rounds} for 1 GB)"
    )
    for label, side, figure in rows:
        print(f"{label:14} {side:48} {figure}")


def _sides(root: Path) -> dict[str, dict[str, Callable[..., Any]]]:
    return {
        "trackhook (do-nothing tracker)": _trackhook(root),
        "MLflow directly (sqlite, local artifacts)": _mlflow(root),
        "W&B directly (offline)": _wandb(root),
    }


def _trackhook(root: Path) -> dict[str, Callable[..., Any]]:
    import trackhook

    config = {"run_log_store": str(root / "run-logs")}
    context = trackhook.start_run("bench-files", config=config)
    context.__enter__()
    step = iter(range(10**9))

    def clean() -> None:
        for held in (root / "run-logs" / "bench-files" / "files").glob("*/*.bin"):
            held.unlink()

    return {
        "file": lambda path: trackhook.track_this(step=next(step), f=trackhook.File(path)),
        "image": lambda array: trackhook.track_this(step=next(step), i=trackhook.Image(array)),
        "clean": clean,
        "close": lambda: context.__exit__(None, None, None),
    }


def _mlflow(root: Path) -> dict[str, Callable[..., Any]]:
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=(root / "mlruns").as_uri())
    run = mlflow.start_run(experiment_id=experiment)
    client = MlflowClient(uri)
    step = iter(range(10**9))

    def clean() -> None:
        for copied in (root / "mlruns").rglob("*.bin"):
            copied.unlink()

    return {
        "file": lambda path: mlflow.log_artifact(str(path), artifact_path=f"f/{next(step)}"),
        "image": lambda array: client.log_image(run.info.run_id, array, key="i", step=next(step)),
        "clean": clean,
        "close": mlflow.end_run,
    }


def _wandb(root: Path) -> dict[str, Callable[..., Any]]:
    import wandb

    run = wandb.init(project="bench", mode="offline", dir=root, reinit="create_new")
    step = iter(range(10**9))

    def clean() -> None:
        for copied in Path(run.dir).rglob("*.bin"):
            copied.unlink()

    return {
        "file": lambda path: run.save(str(path), base_path=str(path.parent), policy="now"),
        "image": lambda array: run.log({"i": wandb.Image(array)}, step=next(step)),
        "clean": clean,
        "close": run.finish,
    }


if __name__ == "__main__":
    main()
