"""Benchmark: a Lightning fit logging to a real ``mlflow server``, with and without trackhook.

Run it where Lightning, the core, trackhook-mlflow and the full ``mlflow`` are installed (the
``bench-integrations`` nox session builds that): ``nox -s bench-integrations``, or
``python bench/bench_lightning.py``.

A fit of 200 optimizer steps of a tiny model on CPU, logging two metrics at every step, runs
side by side, in alternated rounds within one process:

(a) no logger (``logger=False``);
(b) Lightning's own ``MLFlowLogger`` to the server (one request per step);
(c) ``TrackhookLogger`` with the MLflow adapter to the same server.

mlflow, Lightning and trackhook are imported before any clock starts. Each clock covers building
the ``Trainer`` and the whole ``fit``, which for (b) and (c) includes opening the run and closing
it: for (c) that is every value delivered and the run closed. After each fit of (b) and (c) the
script reads the run back and stops if a value is missing. The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import torch
from _timing import alternated
from bench_mlflow import _start_server, _stop_server
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from torch.utils.data import DataLoader, TensorDataset

from trackhook.integrations.lightning import TrackhookLogger

STEPS = 200
ROUNDS = 3
KEYS = ("train_loss", "train_mae")


class Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        features, targets = batch
        predictions = self.layer(features)
        loss = torch.nn.functional.mse_loss(predictions, targets)
        self.log("train_loss", loss)
        self.log("train_mae", (predictions - targets).abs().mean())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _data(steps: int) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(steps * 4, 4, generator=generator)
    targets = torch.randn(steps * 4, 1, generator=generator)
    return DataLoader(TensorDataset(features, targets), batch_size=4)


def _fit(logger: Any, steps: int, folder: Path) -> float:
    data = _data(steps)
    started = time.perf_counter()
    trainer = Trainer(
        logger=logger,
        max_epochs=1,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(Tiny(), data)
    return time.perf_counter() - started


def _check(client: MlflowClient, mlflow_run_id: str, steps: int) -> None:
    for key in KEYS:
        stored = len(client.get_metric_history(mlflow_run_id, key))
        if stored != steps:
            raise SystemExit(f"only {stored} of {steps} values of {key} are in run {mlflow_run_id}")


def _mlflow_logger(url: str, client: MlflowClient, steps: int, folder: Path) -> float:
    logger = MLFlowLogger(experiment_name="bench-mlflowlogger", tracking_uri=url)
    elapsed = _fit(logger, steps, folder)
    _check(client, logger.run_id, steps)
    return elapsed


def _trackhook_logger(url: str, client: MlflowClient, steps: int, folder: Path) -> float:
    run_id = f"bench-{time.time_ns()}"
    config = {"experiment_tracker": {"type": "mlflow", "config": {"tracking_uri": url}}}
    elapsed = _fit(TrackhookLogger(run_id, "bench-trackhook", config=config), steps, folder)
    experiment = client.get_experiment_by_name("bench-trackhook")
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{run_id}'"
    )
    _check(client, run.info.run_id, steps)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore")  # Lightning's advice on workers and log intervals
    with tempfile.TemporaryDirectory(prefix="trackhook-bench-") as name:
        folder = Path(name)
        os.chdir(folder)  # the run log store stays in the temporary folder
        process, url = _start_server(folder / "server")
        try:
            _measure(url, arguments.steps, arguments.rounds, folder)
        finally:
            _stop_server(process)
    return 0


def _measure(url: str, steps: int, rounds: int, folder: Path) -> None:
    client = MlflowClient(url)
    client.search_experiments()
    sides: dict[str, Callable[[], float]] = {
        "(a) no logger": lambda: _fit(False, steps, folder),
        "(b) MLFlowLogger": lambda: _mlflow_logger(url, client, steps, folder),
        "(c) TrackhookLogger + mlflow": lambda: _trackhook_logger(url, client, steps, folder),
    }
    for measure in sides.values():  # a first fit of each warms up Lightning and the server
        measure()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for number in range(rounds):
        for name, measure in alternated(list(sides.items()), number):
            times[name].append(measure())
    print(
        f"a Lightning fit of {steps} steps, {len(KEYS)} metrics a step, to a mlflow server on "
        f"127.0.0.1; mlflow {mlflow.__version__}, torch {torch.__version__}; "
        f"median / best of {rounds} alternated rounds"
    )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:<32}{medians[name]:>8.2f} s{min(values):>8.2f} s")
    none, native, bridge = medians.values()
    print(f"overhead over no logger: MLFlowLogger {native - none:.2f} s, ", end="")
    print(f"trackhook {bridge - none:.2f} s")
    print(f"trackhook's overhead / MLFlowLogger's = {(bridge - none) / (native - none):.3f}")


if __name__ == "__main__":
    sys.exit(main())
