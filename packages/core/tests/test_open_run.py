"""Runs opened and closed by two calls (``open_run`` / ``close_run``), as the framework bridges of
``trackhook.integrations`` open them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trackhook
from trackhook.api import close_run, open_run, tracking_into
from trackhook.testing import recording

from .conftest import recording_config


def test_a_run_opened_by_a_call_closes_with_the_status_given() -> None:
    with recording() as recorder:
        run = open_run("two-calls", config=recording_config())
        trackhook.track_this(step=1, loss=0.5)
        close_run(run, "FAIL")
    assert recorder.metrics("loss") == {1: 0.5}
    assert recorder.statuses() == ["FAIL"]
    assert run.status == "FAIL"


def test_closing_a_closed_run_changes_nothing() -> None:
    with recording() as recorder:
        run = open_run("twice", config=recording_config())
        close_run(run, "SUCCESS")
        close_run(run, "FAIL")
    assert recorder.statuses() == ["SUCCESS"]


def test_tracking_into_a_run_wins_over_the_threads_own_run() -> None:
    with recording() as recorder:
        with trackhook.start_run("outer", config=recording_config()):
            inner = open_run("inner", config=recording_config())
            with tracking_into(inner):
                trackhook.track_this(loss=1.0)
            trackhook.track_this(accuracy=0.5)
            close_run(inner, "SUCCESS")
    runs = {
        record.key: call.kwargs["run"].run_id
        for call in recorder.calls
        for record in call.kwargs.get("metrics", [])
    }
    assert runs == {"loss": "inner", "accuracy": "outer"}


def test_a_run_left_open_closes_as_fail_when_the_interpreter_exits(tmp_path: Path) -> None:
    script = "from trackhook.api import open_run\nopen_run('left-open')\nraise SystemExit(0)\n"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    run_log = json.loads((tmp_path / ".run_log_store" / "left-open.json").read_text())
    assert run_log["status"] == "FAIL"
