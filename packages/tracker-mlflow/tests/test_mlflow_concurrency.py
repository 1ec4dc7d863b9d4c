"""Several processes tracking into one run through the tracking server: every value is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient

import trackhook

PROCESSES = 4
VALUES = 2000

_CHILD = """
import sys
import trackhook

worker = int(sys.argv[1])
for step in range({values}):
    trackhook.track_this(step=step, **{{f"worker{{worker}}": float(step)}})
"""


def test_four_processes_into_one_run_store_every_value(
    mlflow_server: Any,
    names: Any,
    tmp_path: Path,
    mlflow_config: Any,
    find_run: Any,
    history: Any,
) -> None:
    run_id, tag = names
    config_file = tmp_path / "trackhook.yaml"
    config_file.write_text(yaml.safe_dump(mlflow_config(mlflow_server.url)))
    child = _CHILD.format(values=VALUES)
    with trackhook.start_run(run_id, tag, config=str(config_file)):
        # The children join the run through TRACKHOOK_RUN_ID, exported by start_run.
        environment = {**os.environ, "TRACKHOOK_CONFIG": str(config_file)}
        children = [
            subprocess.Popen([sys.executable, "-c", child, str(n)], env=environment)
            for n in range(PROCESSES)
        ]
        assert [process.wait(timeout=240) for process in children] == [0] * PROCESSES
    client = MlflowClient(mlflow_server.url)
    mlflow_run = find_run(client, tag, run_id)
    for n in range(PROCESSES):
        assert history(client, mlflow_run, f"worker{n}") == [(s, float(s)) for s in range(VALUES)]
    assert mlflow_run.info.status == "FINISHED"
