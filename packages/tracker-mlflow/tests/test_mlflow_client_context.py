"""``get_experiment_tracker_context()``: MLflow's own API inside the run, the user's state after."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

import trackhook


def test_native_calls_land_in_the_trackhook_run(
    tracking_uri: str,
    client: MlflowClient,
    names: Any,
    tmp_path: Path,
    mlflow_config: Any,
    find_run: Any,
) -> None:
    run_id, tag = names
    notes = tmp_path / "notes.txt"
    notes.write_text("written by the user")
    with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
        trackhook.track_this(loss=0.5)
        with trackhook.get_experiment_tracker_context() as active:
            assert isinstance(active, mlflow.ActiveRun)
            assert mlflow.active_run().info.run_id == active.info.run_id
            mlflow.log_param("native_param", "yes")
            mlflow.log_artifact(str(notes))
    mlflow_run = find_run(client, tag, run_id)
    assert mlflow_run.info.run_id == active.info.run_id
    assert mlflow_run.data.params["native_param"] == "yes"
    assert mlflow_run.data.metrics == {"loss": 0.5}
    assert [f.path for f in client.list_artifacts(mlflow_run.info.run_id)] == ["notes.txt"]
    assert mlflow_run.info.status == "FINISHED"


def test_a_nested_run_started_inside_lands_beside_its_parent_and_the_experiment_is_restored(
    tracking_uri: str, client: MlflowClient, names: Any, mlflow_config: Any
) -> None:
    run_id, tag = names
    experiment_before = mlflow.tracking.fluent._active_experiment_id
    with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
        with trackhook.get_experiment_tracker_context() as parent:
            with mlflow.start_run(run_name="child", nested=True) as child:
                mlflow.log_param("fold", 1)
    stored = client.get_run(child.info.run_id)
    assert stored.info.experiment_id == parent.info.experiment_id
    assert stored.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlflow.tracking.fluent._active_experiment_id == experiment_before


def test_leaving_the_context_restores_the_users_uri_and_active_run(
    tracking_uri: str,
    names: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_config: Any,
) -> None:
    users_uri = f"sqlite:///{tmp_path / 'users-own.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-the-environment.db")
    mlflow.set_tracking_uri(users_uri)
    try:
        with mlflow.start_run(run_name="the-users-run") as users_run:
            run_id, tag = names
            with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
                with trackhook.get_experiment_tracker_context() as active:
                    assert mlflow.get_tracking_uri() == tracking_uri
                    assert mlflow.active_run().info.run_id == active.info.run_id
                assert mlflow.get_tracking_uri() == users_uri
                assert os.environ["MLFLOW_TRACKING_URI"] == users_uri  # as set_tracking_uri left it
                assert mlflow.active_run().info.run_id == users_run.info.run_id
            assert mlflow.active_run().info.run_id == users_run.info.run_id
        assert MlflowClient(users_uri).get_run(users_run.info.run_id).info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)


def test_the_context_leaves_no_run_active_when_the_user_had_none(
    tracking_uri: str, names: Any, mlflow_config: Any
) -> None:
    run_id, tag = names
    uri_before = mlflow.get_tracking_uri()
    with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
        with trackhook.get_experiment_tracker_context():
            pass
        assert mlflow.active_run() is None
    assert mlflow.get_tracking_uri() == uri_before
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_configuring_the_tracker_changes_no_global_mlflow_state(
    tracking_uri: str, names: Any, mlflow_config: Any
) -> None:
    uri_before = mlflow.get_tracking_uri()
    run_id, tag = names
    with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
        trackhook.track_this(x=1)
        assert mlflow.get_tracking_uri() == uri_before
    assert mlflow.get_tracking_uri() == uri_before
    assert not any(name.startswith("MLFLOW_") for name in os.environ)
