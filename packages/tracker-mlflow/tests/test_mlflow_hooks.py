"""The hooks called directly, as the core's delivery thread calls them, on real MLflow stores."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from trackhook import MetricRecord, ParamRecord, RunInfo, TighterLimitsRequired, TrackhookWarning
from trackhook_mlflow import LATEST_TAG_PREFIX, MlflowConfig, MlflowTracker
from trackhook_mlflow._tracker import _tighter_limits


def _param(key: str, value: Any) -> ParamRecord:
    return ParamRecord(key, value, 0, time.time())


def test_open_run_returns_facts_for_the_run_log(tracking_uri: str, names: Any) -> None:
    run_id, tag = names
    facts = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri)).trackhook_open_run(
        RunInfo(run_id, tag, time.time())
    )
    run = MlflowClient(tracking_uri).get_run(facts["mlflow_run_id"])
    assert run.info.run_name == run_id
    assert facts["experiment_id"] == run.info.experiment_id
    assert facts["tracking_uri"] == tracking_uri


def test_two_trackers_opening_one_run_id_share_one_mlflow_run(
    tracking_uri: str, names: Any
) -> None:
    run = RunInfo(*names, time.time())
    first = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri)).trackhook_open_run(run)
    second = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri)).trackhook_open_run(run)
    assert first["mlflow_run_id"] == second["mlflow_run_id"]


def test_a_changed_param_logged_by_another_process_is_learnt_not_fatal(
    tracking_uri: str, names: Any
) -> None:
    run = RunInfo(*names, time.time())
    config = MlflowConfig(tracking_uri=tracking_uri)
    elsewhere, here = MlflowTracker(config), MlflowTracker(config)
    here.trackhook_open_run(run)
    elsewhere.trackhook_open_run(run)
    elsewhere.trackhook_log_batch(run, [], [_param("optimiser_0", "adam")])
    here.trackhook_log_batch(run, [], [_param("optimiser_0", "sgd"), _param("lr_0", "auto")])
    mlflow_run = MlflowClient(tracking_uri).get_run(here._runs[run.run_id].mlflow_run_id)
    assert mlflow_run.data.params == {"optimiser_0": "adam", "lr_0": "auto"}
    assert mlflow_run.data.tags[f"{LATEST_TAG_PREFIX}optimiser_0"] == "sgd"


def test_the_latest_tag_follows_every_change_of_a_param(tracking_uri: str, names: Any) -> None:
    run = RunInfo(*names, time.time())
    tracker = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri))
    tracker.trackhook_open_run(run)
    client = MlflowClient(tracking_uri)
    run_id = tracker._runs[run.run_id].mlflow_run_id
    changes = [["a", "b"], ["a", "b"], ["a"], ["c", "a"]]  # the second is a retry of the first
    latest = []
    for index, values in enumerate(changes):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tracker.trackhook_log_batch(run, [], [_param("mode_0", value) for value in values])
        warned = [w for w in caught if issubclass(w.category, TrackhookWarning)]
        assert len(warned) == (index == 0), "one warning per key"
        latest.append(client.get_run(run_id).data.tags[f"{LATEST_TAG_PREFIX}mode_0"])
    assert latest == ["b", "b", "a", "a"]
    assert client.get_run(run_id).data.params == {"mode_0": "a"}


def test_a_batch_offered_again_stores_its_metrics_once(tracking_uri: str, names: Any) -> None:
    run = RunInfo(*names, time.time())
    tracker = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri))
    tracker.trackhook_open_run(run)
    now = time.time()
    batch = [MetricRecord("loss", float(step), step, now) for step in range(10)]
    tracker.trackhook_log_batch(run, batch, [])
    tracker.trackhook_log_batch(run, batch, [])  # the response of the first was lost
    run_id = tracker._runs[run.run_id].mlflow_run_id
    assert len(MlflowClient(tracking_uri).get_metric_history(run_id, "loss")) == 10


def test_close_run_maps_success_and_fail_to_mlflow_statuses(tracking_uri: str, names: Any) -> None:
    client = MlflowClient(tracking_uri)
    for status, expected in (("SUCCESS", "FINISHED"), ("FAIL", "FAILED")):
        run = RunInfo(f"{names[0]}-{status}", names[1], time.time())
        tracker = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri))
        facts = tracker.trackhook_open_run(run)
        tracker.trackhook_close_run(run, status)
        assert client.get_run(facts["mlflow_run_id"]).info.status == expected


def test_log_batch_and_close_first_in_a_fresh_tracker_continue_the_run_opened_elsewhere(
    sqlite_uri: str, names: Any
) -> None:
    # `trackhook sync` delivers the rest of a run whose process died, in a process that never
    # called trackhook_open_run: log_batch may be its first hook.
    run = RunInfo(*names, time.time())
    config = MlflowConfig(tracking_uri=sqlite_uri)
    opener = MlflowTracker(config)
    facts = opener.trackhook_open_run(run)
    opener.trackhook_log_batch(run, [MetricRecord("loss", 1.0, 0, time.time())], [])
    syncer = MlflowTracker(config)
    syncer.trackhook_log_batch(
        run, [MetricRecord("loss", 0.5, 1, time.time())], [_param("spam_1", "late")]
    )
    syncer.trackhook_close_run(run, "FAIL")
    client = MlflowClient(sqlite_uri)
    mlflow_run = client.get_run(facts["mlflow_run_id"])
    history = sorted(
        (m.step, m.value) for m in client.get_metric_history(facts["mlflow_run_id"], "loss")
    )
    assert history == [(0, 1.0), (1, 0.5)]
    assert mlflow_run.data.params == {"spam_1": "late"}
    assert mlflow_run.info.status == "FAILED"
    assert len(client.search_runs([facts["experiment_id"]])) == 1, "sync made a second run"


def test_an_unreachable_server_fails_fast_instead_of_retrying_for_minutes(
    names: Any, unused_port: int
) -> None:
    config = MlflowConfig(
        tracking_uri=f"http://127.0.0.1:{unused_port}", max_retries=1, request_timeout=2
    )
    started = time.monotonic()
    with pytest.raises(MlflowException):
        MlflowTracker(config).trackhook_open_run(RunInfo(*names, time.time()))
    assert time.monotonic() - started < 15


def test_credentials_in_the_uri_are_not_in_the_facts(
    mlflow_server: Any, names: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = mlflow_server.url.replace("http://", "http://alice:s3cret@")
    tracker = MlflowTracker(MlflowConfig(tracking_uri=uri))
    run = RunInfo(*names, time.time())
    facts = tracker.trackhook_open_run(run)
    tracker.trackhook_close_run(run, "SUCCESS")
    assert "s3cret" not in repr(facts)
    assert facts["tracking_uri"] == mlflow_server.url.replace("http://", "http://***@")
    assert "s3cret" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "message",
    [
        "'Param value' exceeds the maximum length of 500 characters",
        "Param value 'xxxx' had length 6000, which exceeded length limit of 500",
    ],
)
def test_a_server_with_a_shorter_param_limit_asks_the_core_for_it(message: str) -> None:
    demand = _tighter_limits(MlflowException(message, error_code=INVALID_PARAMETER_VALUE))
    assert isinstance(demand, TighterLimitsRequired)
    assert demand.changes == {"max_param_length": 500}


def test_other_refusals_are_not_taken_for_a_shorter_limit() -> None:
    error = MlflowException("Invalid metric name 'a//b'", error_code=INVALID_PARAMETER_VALUE)
    assert _tighter_limits(error) is None
