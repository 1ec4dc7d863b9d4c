"""``TrackhookTracker`` in a real accelerate training loop on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from trackhook.integrations.accelerate import TrackhookTracker
from trackhook.testing import recording

from .conftest import mlflow_config, mlflow_history, mlflow_run, recording_config

STEPS = 4


def train(tracker: TrackhookTracker, config: dict[str, Any]) -> None:
    """A few SGD steps of a linear model, logging the loss and the step's learning rate."""
    accelerator = Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("ignored-for-tracker-objects", config=config)
    generator = torch.Generator().manual_seed(0)
    features, targets = (
        torch.randn(16, 4, generator=generator),
        torch.randn(16, 1, generator=generator),
    )
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(features, targets), batch_size=4
    )
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["learning_rate"])
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    for step, (x, y) in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"loss": loss.detach(), "lr": optimizer.param_groups[0]["lr"]}, step=step)
    accelerator.end_training()


def test_training_tracks_the_init_config_as_params_and_logs_at_their_step() -> None:
    config = {"learning_rate": 0.1, "epochs": 1, "data": Path("data/train.csv")}
    with recording() as recorder:
        train(TrackhookTracker("loop", config=recording_config()), config)
    assert recorder.params() == {"learning_rate": 0.1, "epochs": 1, "data": "data/train.csv"}
    assert sorted(recorder.metrics("loss")) == list(range(STEPS))
    assert recorder.metrics("lr") == dict.fromkeys(range(STEPS), 0.1)
    assert recorder.statuses() == ["SUCCESS"]


def test_the_tracker_is_the_open_run() -> None:
    tracker = TrackhookTracker("native", config=recording_config())
    with recording():
        run = tracker.tracker
        assert (run.run_id, run.closed) == ("native", False)
        tracker.finish()
    assert run.closed


def test_training_lands_in_mlflow(sqlite_uri: str, names: tuple[str, str]) -> None:
    run_id, tag = names
    train(TrackhookTracker(run_id, tag, config=mlflow_config(sqlite_uri)), {"learning_rate": 0.1})
    run = mlflow_run(sqlite_uri, tag, run_id)
    assert run.data.params == {"learning_rate_0": "0.1"}
    assert [step for step, _ in mlflow_history(sqlite_uri, run, "loss")] == list(range(STEPS))
    assert run.info.status == "FINISHED"
