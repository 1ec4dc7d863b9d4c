"""What MLflow refuses, and a cold MLflow: the values next to a refused one still arrive.

A value MLflow refuses for its content is set aside (``rejected`` in the run log, with MLflow's
reason) and the values behind it are delivered; an outage is never taken for a refusal. Refusals
are made by MLflow itself: its validation, or its database refusing a value through a constraint
(as PostgreSQL refuses a NUL in text), on a real sqlite store and behind a real ``mlflow server``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.rest_utils import verify_rest_response

import trackhook
from trackhook import MetricRecord, ParamRecord, RunInfo, ValuesRejected
from trackhook_mlflow import LONG_PARAM_FOLDER, MlflowConfig, MlflowTracker, MlflowTrackerError
from trackhook_mlflow._tracker import _refused_for_content

_STORE_REFUSES = "the store refuses this value"


@pytest.fixture
def database(tracking_uri: str, request: pytest.FixtureRequest) -> Path:
    """The sqlite file behind the tracking URI: the server's, or the store's own."""
    if tracking_uri.startswith("http"):
        return Path(request.getfixturevalue("mlflow_server").folder) / "server.db"
    return Path(tracking_uri.removeprefix("sqlite:///"))


def _sql(database: Path, statement: str) -> None:
    with closing(sqlite3.connect(database, timeout=30)) as connection:
        connection.execute(statement)
        connection.commit()


@pytest.fixture
def refused_param(database: Path) -> Iterator[str]:
    """A param key that MLflow's database refuses through a constraint of its own."""
    key = f"refused_{uuid.uuid4().hex[:8]}"
    trigger = f"trackhook_test_{key}"
    _sql(
        database,
        f"CREATE TRIGGER {trigger} BEFORE INSERT ON params WHEN NEW.key = '{key}_0' "
        f"BEGIN SELECT RAISE(ABORT, '{_STORE_REFUSES}'); END",
    )
    yield key
    _sql(database, f"DROP TRIGGER {trigger}")


def _delivery(run: trackhook.Run) -> dict[str, Any]:
    document = json.loads(run.run_log_path.read_text())
    delivery: dict[str, Any] = document["experiment_trackers"][0]["delivery"]
    return delivery


def _tracker(tracking_uri: str, names: Any) -> tuple[MlflowTracker, RunInfo, str]:
    """A tracker with its run open, as the delivery thread has it, and the MLflow run's id."""
    tracker = MlflowTracker(MlflowConfig(tracking_uri=tracking_uri))
    run = RunInfo(*names, time.time())
    facts = tracker.trackhook_open_run(run)
    return tracker, run, facts["mlflow_run_id"]


def test_a_value_mlflow_refuses_is_set_aside_and_the_values_behind_it_arrive(
    run_in_mlflow: Any, client: MlflowClient, history: Any, refused_param: str
) -> None:
    def body() -> None:
        for step in range(100):
            trackhook.track_this(step=step, loss=float(step))
            if step == 50:
                trackhook.track_this(**{refused_param: "anything"})

    with pytest.warns(trackhook.TrackhookWarning, match="refused"):
        run, mlflow_run = run_in_mlflow(body)
    assert history(client, mlflow_run, "loss") == [(step, float(step)) for step in range(100)]
    assert mlflow_run.data.params == {}
    assert mlflow_run.info.status == "FINISHED"
    delivery = _delivery(run)
    assert (delivery["delivered"], delivery["rejected"], delivery["undelivered"]) == (100, 1, 0)
    (reason,) = delivery["rejected_reasons"]
    assert _STORE_REFUSES in reason
    assert f"{refused_param}_0" in json.dumps(delivery)  # the refused key, to find the culprit


def test_a_batch_mlflows_validation_refuses_is_rejected_with_mlflows_reason(
    tracking_uri: str, names: Any
) -> None:
    # ".." is renamed by the core; the tracker must not rely on that to tell a refusal apart
    tracker, run, mlflow_run_id = _tracker(tracking_uri, names)
    now = time.time()
    batch = [MetricRecord("loss", 1.0, 0, now), MetricRecord("..", 2.0, 0, now)]
    with pytest.raises(ValuesRejected, match="Invalid value"):
        tracker.trackhook_log_batch(run, batch, [])
    assert MlflowClient(tracking_uri).get_run(mlflow_run_id).data.metrics == {}


def test_a_server_that_stops_answering_is_an_outage_not_a_refusal(
    own_mlflow_server: Any, names: Any
) -> None:
    if not own_mlflow_server.healthy():
        own_mlflow_server.start()
    tracker = MlflowTracker(
        MlflowConfig(tracking_uri=own_mlflow_server.url, max_retries=1, request_timeout=60)
    )
    run = RunInfo(*names, time.time())
    tracker.trackhook_open_run(run)
    own_mlflow_server.stop()
    with pytest.raises(MlflowException) as raised:
        tracker.trackhook_log_batch(run, [MetricRecord("loss", 1.0, 0, time.time())], [])
    assert not isinstance(raised.value, ValuesRejected)


class _ProxyPage(BaseHTTPRequestHandler):
    """What a proxy in front of a server answers: a page of its own, not MLflow's JSON error."""

    def do_POST(self) -> None:
        status = int(self.path.rsplit("/", 1)[-1])
        body = f"<html><body>{status} from the proxy</body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the answers, not a log."""


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [400, 401, 403, 413, 429, 500, 502, 503])
def test_an_answer_that_is_not_mlflows_own_is_never_a_refusal(proxy: str, status: int) -> None:
    response = requests.post(f"{proxy}/{status}", json={}, timeout=30)
    with pytest.raises(MlflowException) as raised:
        verify_rest_response(response, "/api/2.0/mlflow/runs/log-batch")
    assert not _refused_for_content(raised.value)


def test_a_deleted_mlflow_run_holds_values_back_instead_of_rejecting_them(
    tracking_uri: str, names: Any, history: Any
) -> None:
    tracker, run, mlflow_run_id = _tracker(tracking_uri, names)
    client = MlflowClient(tracking_uri)
    client.delete_run(mlflow_run_id)
    batch = [MetricRecord("loss", 1.0, 0, time.time())]
    with pytest.raises(MlflowTrackerError, match="mlflow runs restore"):
        tracker.trackhook_log_batch(run, batch, [])
    client.restore_run(mlflow_run_id)
    tracker.trackhook_log_batch(run, batch, [])  # the core offers the batch again later
    assert history(client, client.get_run(mlflow_run_id), "loss") == [(0, 1.0)]


@pytest.mark.parametrize("key", ["../../../../x", "/abs", "a/../../../../b", "a\x00b"])
def test_a_long_param_with_a_hostile_key_stays_inside_the_runs_artifact_folder(
    sqlite_uri: str, names: Any, key: str
) -> None:
    store_folder = Path(sqlite_uri.removeprefix("sqlite:///")).parent
    tracker, run, mlflow_run_id = _tracker(sqlite_uri, names)
    artifacts = Path(MlflowClient(sqlite_uri).get_run(mlflow_run_id).info.artifact_uri)
    before = {path for path in store_folder.rglob("*") if path.is_file()}
    text = "x" * 7000
    record = ParamRecord(f"{key}_0", text[:100], 0, time.time(), full_value=text)
    with suppress(ValuesRejected):  # MLflow refuses most of these keys, after the artifact
        tracker.trackhook_log_batch(run, [], [record])
    written = {path for path in store_folder.rglob("*") if path.is_file()} - before
    written -= {path for path in written if path.name.startswith("mlflow.db")}
    (artifact,) = written
    assert artifact.is_relative_to(artifacts / LONG_PARAM_FOLDER)
    assert artifact.read_text() == text


_COLD_RUN = textwrap.dedent(
    """
    import json, sys, time
    started = time.monotonic()
    import trackhook

    config = {"experiment_tracker": {"type": "mlflow", "config": {"tracking_uri": sys.argv[1]}}}
    with trackhook.start_run("cold-run", "cold", config=config) as run:
        for step in range(200):
            trackhook.track_this(step=step, loss=float(step), phase="train")
        tracked = time.monotonic()
    closed = time.monotonic()
    print(json.dumps({
        "tracking_seconds": round(tracked - started, 2),
        "closing_seconds": round(closed - tracked, 2),
        "run_log": str(run.run_log_path),
    }))
    """
)


def test_a_cold_mlflow_receives_every_value_of_a_run_that_closes_at_once(
    tmp_path: Path, find_run: Any
) -> None:
    # a fresh interpreter (MLflow not imported yet) and a fresh database, default settings
    uri = f"sqlite:///{tmp_path / 'cold.db'}"
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TRACKHOOK_", "MLFLOW_"))
    }
    finished = subprocess.run(
        [sys.executable, "-c", _COLD_RUN, uri],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(finished.stdout.splitlines()[-1])
    print(f"cold MLflow: {figures}")
    document = json.loads((tmp_path / figures["run_log"]).read_text())
    delivery = document["experiment_trackers"][0]["delivery"]
    assert (delivery["delivered"], delivery["undelivered"]) == (400, 0), finished.stderr
    mlflow_run = find_run(MlflowClient(uri), "cold", "cold-run")
    assert len(mlflow_run.data.params) == 200
    assert mlflow_run.data.metrics == {"loss": 199.0}
    assert mlflow_run.info.status == "FINISHED"
