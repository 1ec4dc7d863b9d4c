"""Which MLflow run a run_id opens: continued whatever this process remembers, on real stores.

The tracker remembers experiment ids for the life of the process and skips work it can prove
useless (the search in an experiment it has just created, a status or tag the run holds already);
these tests show that none of it changes where values go.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from mlflow import MlflowClient

from trackhook import MetricRecord, RunInfo
from trackhook_mlflow import RUN_ID_TAG, MlflowConfig, MlflowTracker, MlflowTrackerError


def _tracker(tracking_uri: str, **settings: Any) -> MlflowTracker:
    """A fresh tracker, as in another run of this process (the process's memory is shared)."""
    return MlflowTracker(MlflowConfig(tracking_uri=tracking_uri, **settings))


def _open_then_delete_its_experiment(uri: str, run_id: str, tag: str) -> tuple[MlflowClient, str]:
    """Open the run in a fresh tracker (which remembers the experiment), then delete that
    experiment behind its back: a client, and the experiment's id."""
    client = MlflowClient(uri)
    opened = _tracker(uri).trackhook_open_run(RunInfo(run_id, tag, time.time()))
    client.delete_experiment(opened["experiment_id"])
    return client, opened["experiment_id"]


def test_a_run_in_an_experiment_deleted_since_it_was_remembered_is_refused_naming_the_fix(
    tracking_uri: str, names: Any
) -> None:
    run_id, tag = names
    _open_then_delete_its_experiment(tracking_uri, run_id, tag)
    with pytest.raises(MlflowTrackerError, match="is deleted: restore it"):
        _tracker(tracking_uri).trackhook_open_run(RunInfo(f"{run_id}-2", tag, time.time()))


def test_an_experiment_deleted_for_good_and_made_again_receives_the_next_run(
    sqlite_uri: str, names: Any
) -> None:
    run_id, tag = names
    client, deleted = _open_then_delete_its_experiment(sqlite_uri, run_id, tag)
    subprocess.run(
        [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", sqlite_uri,
         "--tracking-uri", sqlite_uri, "--experiment-ids", deleted],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # sqlite may give the freed id to the next experiment: here one holding a run of the same
    # run_id, which the run must not continue
    _tracker(sqlite_uri).trackhook_open_run(RunInfo(f"{run_id}-2", f"{tag}-other", time.time()))
    made_again = client.create_experiment(tag)
    facts = _tracker(sqlite_uri).trackhook_open_run(RunInfo(f"{run_id}-2", tag, time.time()))
    assert facts["experiment_id"] == made_again
    assert client.get_run(facts["mlflow_run_id"]).info.experiment_id == made_again


def test_a_finished_run_continued_is_running_again(tracking_uri: str, names: Any) -> None:
    run = RunInfo(*names, time.time())
    first = _tracker(tracking_uri)
    facts = first.trackhook_open_run(run)
    first.trackhook_close_run(run, "SUCCESS")
    again = _tracker(tracking_uri).trackhook_open_run(run)
    assert again["mlflow_run_id"] == facts["mlflow_run_id"]
    assert MlflowClient(tracking_uri).get_run(facts["mlflow_run_id"]).info.status == "RUNNING"


def test_closing_first_in_a_fresh_tracker_closes_the_run_opened_elsewhere(
    tracking_uri: str, names: Any
) -> None:
    # `trackhook sync` closes the run of a process that died before closing it
    run = RunInfo(*names, time.time())
    opener = _tracker(tracking_uri)
    facts = opener.trackhook_open_run(run)
    opener.trackhook_log_batch(run, [MetricRecord("loss", 1.0, 0, time.time())], [])
    _tracker(tracking_uri).trackhook_close_run(run, "FAIL")
    client = MlflowClient(tracking_uri)
    assert client.get_run(facts["mlflow_run_id"]).info.status == "FAILED"
    tagged = client.search_runs(
        [facts["experiment_id"]], filter_string=f"tags.`{RUN_ID_TAG}` = '{run.run_id}'"
    )
    assert [found.info.run_id for found in tagged] == [facts["mlflow_run_id"]]


def test_tags_changed_in_the_configuration_are_set_on_the_continued_run(
    tracking_uri: str, names: Any
) -> None:
    run = RunInfo(*names, time.time())
    facts = _tracker(tracking_uri, tags={"team": "vision", "stage": "dev"}).trackhook_open_run(run)
    _tracker(tracking_uri, tags={"team": "vision", "stage": "prod"}).trackhook_open_run(run)
    tags = MlflowClient(tracking_uri).get_run(facts["mlflow_run_id"]).data.tags
    assert (tags["team"], tags["stage"]) == ("vision", "prod")
