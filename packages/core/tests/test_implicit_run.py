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
