"""Each test trains a tiny model for real on CPU, in its own working directory.

What the bridges send is checked twice: with the recording tracker of ``trackhook.testing`` (every
hook call, in this process) and with the MLflow adapter on a sqlite store, read back with
``MlflowClient``. Nothing is downloaded: the session sets ``HF_HUB_OFFLINE`` and
``TRANSFORMERS_OFFLINE``, and every model is built from a small configuration.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any test module imports keras
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TRACKHOOK_", "MLFLOW_")) or name in _RANK_VARIABLES:
            monkeypatch.delenv(name)
    yield


def recording_config() -> dict[str, Any]:
    """Send to the recording tracker (``trackhook.testing.recording``), delivering quickly."""
    return {
        "experiment_tracker": {"type": "recording"},
        "delivery": {"interval": 0.01, "flush_timeout": 30.0},
    }


def mlflow_config(tracking_uri: str) -> dict[str, Any]:
    return {
        "experiment_tracker": {"type": "mlflow", "config": {"tracking_uri": tracking_uri}},
        "delivery": {"interval": 0.05, "flush_timeout": 60.0},
    }


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh (run_id, tag) pair."""
    unique = uuid.uuid4().hex[:8]
    return f"run-{unique}", f"exp-{request.node.originalname}"


def mlflow_run(tracking_uri: str, tag: str, run_id: str) -> Any:
    """The one MLflow run named ``run_id`` in the experiment ``tag``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(tag)
    assert experiment is not None, f"no experiment {tag!r}"
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_name for run in runs] == [run_id]
    return runs[0]


def mlflow_history(tracking_uri: str, run: Any, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, key)
    return sorted((metric.step, metric.value) for metric in history)
