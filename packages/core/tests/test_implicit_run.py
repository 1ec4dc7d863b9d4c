"""track_this outside start_run: a run opened from the environment, closed at interpreter exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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


OPENS_LIKE_A_TRACKER_LIBRARY = """
import atexit, sys, threading, time
import trackhook
from trackhook.registry import registered

RECORD = sys.argv[1]


def record(line):
    with open(RECORD, "a") as file:
        file.write(line + "\\n")


class OpensLikeATrackerLibrary:  # as MLflow and W&B open their runs

    @trackhook.hookimpl
    def trackhook_open_run(self, run):
        time.sleep(0.5)  # importing a heavy library: the script ends meanwhile
        import concurrent.futures  # first imported here, as a library's import would

        atexit.register(record, "the tracker's exit handler")
        thread = threading.Thread(target=record, args=("the tracker's thread",))
        thread.start()
        thread.join()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(record, "the tracker's executor").result()

    @trackhook.hookimpl
    def trackhook_log_batch(self, metrics):
        for metric in metrics:
            record(f"{metric.key}={metric.value} at {metric.step}")

    @trackhook.hookimpl
    def trackhook_close_run(self, run, status):
        record(f"closed {status}")


registration = registered("opens-late", OpensLikeATrackerLibrary)  # kept: a dropped one unregisters
registration.__enter__()
trackhook.track_this(step=1, loss=0.5)
"""


def test_a_script_that_tracks_and_ends_at_once_delivers_before_the_interpreter_exits(
    tmp_path: Path,
) -> None:
    (tmp_path / "trackhook.yaml").write_text("experiment_tracker: {type: opens-late}\n")
    record = tmp_path / "record.txt"
    result = subprocess.run(
        [sys.executable, "-c", OPENS_LIKE_A_TRACKER_LIBRARY, str(record)],
        cwd=tmp_path,
        env={**os.environ, "TRACKHOOK_RUN_ID": "at-once"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "can't register atexit" not in result.stderr
    assert "Traceback" not in result.stderr
    assert record.read_text().splitlines() == [
        "the tracker's thread",
        "the tracker's executor",
        "loss=0.5 at 1",
        "closed SUCCESS",
        "the tracker's exit handler",
    ]
    log = json.loads((tmp_path / ".run_log_store" / "at-once.json").read_text())
    assert log["status"] == "SUCCESS"
    assert log["experiment_trackers"][0]["delivery"]["delivered"] == 1


THREAD_TRACKING_AFTER_THE_MAIN_THREAD_ENDS = """
import sys, threading, time
import trackhook


def train():
    time.sleep(0.5)  # the main thread has ended by now
    trackhook.track_this(step=1, loss=0.25)


if sys.argv[1] == "main-tracks-first":
    trackhook.track_this(step=0, loss=0.5)
threading.Thread(target=train).start()
"""


@pytest.mark.parametrize("main_thread", ["main-tracks-first", "main-does-not-track"])
def test_a_thread_still_running_when_the_main_thread_ends_tracks_into_the_implicit_run(
    main_thread: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", THREAD_TRACKING_AFTER_THE_MAIN_THREAD_ENDS, main_thread],
        cwd=tmp_path,
        env={**os.environ, "TRACKHOOK_RUN_ID": "late"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    log = json.loads((tmp_path / ".run_log_store" / "late.json").read_text())
    assert log["status"] == "SUCCESS"
    expected = {"0": 0.5, "1": 0.25} if main_thread == "main-tracks-first" else {"1": 0.25}
    assert log["user_defined_metrics"] == {"loss": expected}


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
