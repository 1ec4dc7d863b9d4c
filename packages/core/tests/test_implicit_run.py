"""track_this outside start_run: a run opened from the environment, closed at interpreter exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def run_implicitly(
    script: str, tracker_type: str, run_id: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in an implicit run ``run_id`` configured with one tracker of the type."""
    config = cwd / "trackhook.yaml"
    config.write_text(f"experiment_tracker: {{type: {tracker_type}}}\n")
    return run_python(script, cwd, TRACKHOOK_RUN_ID=run_id, TRACKHOOK_CONFIG=str(config))


def test_track_this_without_a_run_opens_one_named_by_the_environment(tmp_path: Path) -> None:
    result = run_python(
        "import trackhook\ntrackhook.track_this(step=1, loss=0.5)\n",
        tmp_path,
        TRACKHOOK_RUN_ID="from-env",
        TRACKHOOK_TAG="nightly",
        TRACKHOOK_TRACK_extra="7",
    )
    assert result.returncode == 0, result.stderr
    log = json.loads((tmp_path / ".run_log_store" / "from-env.json").read_text())
    assert (log["tag"], log["status"]) == ("nightly", "SUCCESS")
    assert log["user_defined_metrics"] == {"loss": {"1": 0.5}, "extra": 7}


def test_an_uncaught_exception_closes_the_implicit_run_as_failed(tmp_path: Path) -> None:
    result = run_python(
        "import trackhook\ntrackhook.track_this(loss=0.5)\nraise SystemError('boom')\n",
        tmp_path,
        TRACKHOOK_RUN_ID="crashing",
    )
    assert result.returncode == 1
    assert "boom" in result.stderr
    log = json.loads((tmp_path / ".run_log_store" / "crashing.json").read_text())
    assert log["status"] == "FAIL"


def test_without_a_run_id_in_the_environment_one_is_generated(tmp_path: Path) -> None:
    result = run_python(
        "import trackhook\ntrackhook.track_this(x=1)\nprint(trackhook.active_run().run_id)\n",
        tmp_path,
    )
    run_id = result.stdout.strip()
    assert (tmp_path / ".run_log_store" / f"{run_id}.json").is_file()


TRACKER_OPENING_DURING_EXIT = """
import atexit, threading
import trackhook
from trackhook.registry import registered

release = threading.Event()


class OpensLate:
    @trackhook.hookimpl
    def trackhook_open_run(self, run):
        release.wait(30)

    @trackhook.hookimpl
    def trackhook_log_batch(self, metrics):
        pass

    @trackhook.hookimpl
    def trackhook_close_run(self, run, status):
        print("closed", status, flush=True)


registration = registered("opens-late", OpensLate)  # kept: a dropped one unregisters
registration.__enter__()
trackhook.track_this(x=1.0)


def users_own_exit_handler():  # registered after trackhook's: runs before it
    release.set()
    with trackhook.get_experiment_tracker_context():  # waits until the tracker has opened
        pass


atexit.register(users_own_exit_handler)
"""


def test_a_tracker_opening_while_exit_handlers_run_still_gets_the_run_closed(
    tmp_path: Path,
) -> None:
    result = run_implicitly(TRACKER_OPENING_DURING_EXIT, "opens-late", "opens-late", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["closed SUCCESS"]
    log = json.loads((tmp_path / ".run_log_store" / "opens-late.json").read_text())
    assert log["status"] == "SUCCESS"


TRACKER_FAILING_TO_CLOSE = """
import trackhook
from trackhook.registry import registered


class CannotClose:
    @trackhook.hookimpl
    def trackhook_log_batch(self, metrics):
        pass

    @trackhook.hookimpl
    def trackhook_close_run(self, run, status):
        raise ConnectionError("server went away")


registration = registered("cannot-close", CannotClose)  # kept: a dropped one unregisters
registration.__enter__()
trackhook.track_this(x=1.0)
"""


def test_a_run_its_tracker_failed_to_close_at_exit_is_reported_with_the_sync_hint(
    tmp_path: Path,
) -> None:
    result = run_implicitly(TRACKER_FAILING_TO_CLOSE, "cannot-close", "unclosed", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tracker 'cannot-close' has not closed run 'unclosed'" in result.stderr
    assert "server went away" in result.stderr
    assert "trackhook sync unclosed" in result.stderr
