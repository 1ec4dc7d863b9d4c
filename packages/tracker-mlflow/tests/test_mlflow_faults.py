"""A tracking server down or going away: the user's code goes on, no value is lost or doubled.

These tests own a server of their own (stopped and started at will), on a port of their own.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

import trackhook

TRACKHOOK_COMMAND = str(Path(sys.executable).parent / "trackhook")


@pytest.fixture
def fault_config(mlflow_config: Any, own_mlflow_server: Any) -> Any:
    """Fail fast and retry often: the tests wait for MLflow's recovery, not its backoff.

    A stopped server refuses connections at once; the request timeout only has to outlast a slow
    answer on a loaded CI machine (a 1,000-value batch to a server just restarted).
    """

    def config(flush_timeout: float) -> dict[str, Any]:
        return mlflow_config(  # type: ignore[no-any-return]
            own_mlflow_server.url,
            mlflow={"max_retries": 0, "request_timeout": 10},
            flush_timeout=flush_timeout,
            max_backoff=1.0,
        )

    return config


def test_a_server_down_at_open_costs_the_user_nothing_and_sync_delivers_later(
    own_mlflow_server: Any,
    fault_config: Any,
    names: Any,
    tmp_path: Path,
    find_run: Any,
    history: Any,
) -> None:
    server = own_mlflow_server
    server.stop()
    run_id, tag = names
    config = fault_config(flush_timeout=2.0)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with trackhook.start_run(run_id, tag, config=config) as run:
            for step in range(300):
                trackhook.track_this(step=step, loss=float(step), phase="train")
    assert time.monotonic() - started < 20, "closing waited far longer than flush_timeout"
    assert any("tracker 'mlflow' failed" in str(w.message) for w in caught)
    assert run.user_defined_metrics["loss"]["299"] == 299.0

    server.start()
    config_file = tmp_path / "trackhook.yaml"
    config_file.write_text(yaml.safe_dump({**config, "delivery": {"flush_timeout": 60.0}}))
    for _ in range(2):  # a second sync finds nothing left to send
        subprocess.run(
            [TRACKHOOK_COMMAND, "--config", str(config_file), "sync", run_id],
            check=True,
            timeout=120,
        )
    client = MlflowClient(server.url)
    mlflow_run = find_run(client, tag, run_id)
    assert history(client, mlflow_run, "loss") == [(s, float(s)) for s in range(300)]
    assert set(mlflow_run.data.params) == {f"phase_{s}" for s in range(300)}
    assert mlflow_run.info.status == "FINISHED"


def test_a_server_restarted_mid_run_receives_every_value_exactly_once(
    own_mlflow_server: Any, fault_config: Any, names: Any, find_run: Any, history: Any
) -> None:
    server = own_mlflow_server
    if not server.healthy():
        server.start()
    run_id, tag = names
    values = 0
    with trackhook.start_run(run_id, tag, config=fault_config(flush_timeout=90.0)):
        for step in range(400):
            trackhook.track_this(step=step, loss=float(step))
        time.sleep(1.0)
        server.stop()
        for step in range(400, 800):
            trackhook.track_this(step=step, loss=float(step))
        time.sleep(1.0)  # the tracker fails meanwhile: retried, not raised
        server.start()
        for step in range(800, 1200):
            trackhook.track_this(step=step, loss=float(step))
        values = 1200
    client = MlflowClient(server.url)
    mlflow_run = find_run(client, tag, run_id)
    assert history(client, mlflow_run, "loss") == [(s, float(s)) for s in range(values)]
    assert mlflow_run.info.status == "FINISHED"
