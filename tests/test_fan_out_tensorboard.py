"""Fan-out: one run into MLflow and TensorBoard at once, each read back with its own reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator

import trackhook


def test_every_value_reaches_mlflow_and_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = {
        "experiment_trackers": [
            {"type": "mlflow", "config": {"tracking_uri": tracking_uri}},
            {"type": "tensorboard", "config": {"log_dir": str(tmp_path / "runs")}},
        ]
    }
    with trackhook.start_run(run_id="fan-out", tag="both", config=config):
        trackhook.track_this(optimiser="adam")
        for step in range(100):
            trackhook.track_this(step=step, loss=1 / (step + 1))

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("both")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(mlflow_run.info.run_id, "loss")
    assert sorted(point.step for point in history) == list(range(100))
    assert mlflow_run.data.params == {"optimiser_0": "adam"}
    assert mlflow_run.info.status == "FINISHED"

    run = accumulator.EventAccumulator(
        str(tmp_path / "runs" / "both" / "fan-out"), size_guidance={accumulator.TENSORS: 0}
    )
    run.Reload()
    assert [event.step for event in run.Tensors("loss")] == list(range(100))
    assert [event.step for event in run.Tensors("optimiser_0")] == [0]
