"""Trackhook's own disk failing (full, at the file size limit, read-only, a planted link) never
fails ``track_this``: values are held in memory, written when the disk takes them again, and what
could not be written is counted. The faults are real: ``RLIMIT_FSIZE`` in a child process, a
read-only bind mount in a user namespace, a symbolic link in the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook.store import RunStore, SpoolWriter

from .conftest import recording_config

TOTAL = 30_000

CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys, time, warnings

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG

    import trackhook
    import trackhook.store
    from trackhook.testing import RecordingTracker, recording

    limit, returns_at, held_bytes = (int(argument) for argument in sys.argv[1:4])
    retry_seconds = float(sys.argv[4])
    trackhook.store._MAX_HELD_BYTES = held_bytes
    trackhook.store._RETRY_SECONDS = retry_seconds
    config = json.loads(sys.argv[5])
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    tracker = RecordingTracker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recording(tracker), trackhook.start_run("full", config=config) as run:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
            for step in range(TOTAL):
                trackhook.track_this(step=step, loss=float(step))
                if step == returns_at:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
                    if step < TOTAL - 1:
                        time.sleep(1.5)  # the flush thread writes what was held meanwhile
    print(json.dumps({
        "warnings": [str(warning.message) for warning in caught],
        "received": [record.step for record in tracker.metric_records()],
        "spool": run._spool.run_log_entry(),  # what the run log records of the spool
        "undelivered": run._workers[0].report.undelivered,  # even if no run log can be written
    }))
    """
).replace("TOTAL", str(TOTAL))


def run_child(
    tmp_path: Path,
    *,
    limit: int,
    returns_at: int | None,
    held_bytes: int = 64 << 20,
    retry_seconds: float = 0.5,
) -> dict[str, Any]:
    """Track ``TOTAL`` values under a file size limit of ``limit`` bytes, lifted after the step
    ``returns_at`` (if any); the spool retries the disk at most every ``retry_seconds``."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    config = json.dumps(recording_config(flush_timeout=60.0))
    numbers = [limit, -1 if returns_at is None else returns_at, held_bytes, retry_seconds]
    arguments = [*map(str, numbers), config]
    result = subprocess.run(
        [sys.executable, str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def spooled_steps(store: Path) -> list[int]:
    """The step of every line of the run's spool, failing on any line that is not whole."""
    (spool,) = RunStore(store).spool_files("full")
    return [json.loads(line)["s"] for line in spool.read_bytes().splitlines()]


def test_values_refused_by_the_file_size_limit_are_written_when_space_returns(
    tmp_path: Path,
) -> None:
    outcome = run_child(tmp_path, limit=300_000, returns_at=TOTAL // 2)
    store = tmp_path / ".run_log_store"
    (warning,) = [text for text in outcome["warnings"] if "spool" in text]
    assert str(RunStore(store).spool_dir("full")) in warning
    assert "file size limit" in warning
    assert "recording" not in warning, "not blamed on a tracker"
    assert spooled_steps(store) == list(range(TOTAL)), "every value once, in order, none torn"
    assert sorted(outcome["received"]) == list(range(TOTAL))
    assert outcome["spool"]["folder"] == str(RunStore(store).spool_dir("full"))
    assert (outcome["spool"]["lost_values"], outcome["spool"]["held_values"]) == (0, 0)
    assert not [path for path in store.rglob("*") if ".tmp" in path.name]
    (report,) = json.loads((store / "full.json").read_text())["experiment_trackers"]
    assert (report["delivery"]["delivered"], report["delivery"]["undelivered"]) == (TOTAL, 0)


def test_values_that_never_find_space_are_counted_as_lost(tmp_path: Path) -> None:
    outcome = run_child(tmp_path, limit=1_000_000, returns_at=None, held_bytes=200_000)
    store = tmp_path / ".run_log_store"
    spooled = spooled_steps(store)
    assert spooled == list(range(len(spooled))), "a whole prefix, no torn line"
    assert 0 < len(spooled) < TOTAL
    assert outcome["spool"]["lost_values"] == TOTAL - len(spooled)
    assert "file size limit" in outcome["spool"]["error"]
    assert sorted(outcome["received"]) == spooled
    spool_warnings = [text for text in outcome["warnings"] if "spool" in text]
    assert len(spool_warnings) == 4, "the disk refuses, values drop, the tracker's report, the loss"
    assert "dropped" in spool_warnings[1]


def test_values_that_never_reach_the_spool_are_undelivered_and_said_lost(tmp_path: Path) -> None:
    outcome = run_child(tmp_path, limit=1_000_000, returns_at=None, held_bytes=200_000)
    lost = outcome["spool"]["lost_values"]
    assert lost > 0
    assert outcome["undelivered"] == lost, "the tracker's report counts what it never received"
    (report,) = [text for text in outcome["warnings"] if "could not deliver" in text]
    assert "never reached the spool" in report
    assert "trackhook sync" not in report, "no sync can deliver what is not in the spool"
    (loss,) = [text for text in outcome["warnings"] if "never reached the spool in" in text]
    assert f"{lost} values" in loss
    assert "no tracker received them" in loss


def test_values_the_disk_takes_again_just_before_the_close_reach_the_tracker(
    tmp_path: Path,
) -> None:
    # the spool retries the disk only every hour: only the close's own attempt can write them
    outcome = run_child(tmp_path, limit=300_000, returns_at=TOTAL - 1, retry_seconds=3600)
    store = tmp_path / ".run_log_store"
    assert spooled_steps(store) == list(range(TOTAL))
    assert sorted(outcome["received"]) == list(range(TOTAL))
    (report,) = json.loads((store / "full.json").read_text())["experiment_trackers"]
    assert (report["delivery"]["delivered"], report["delivery"]["undelivered"]) == (TOTAL, 0)


READ_ONLY_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    from pathlib import Path
    from trackhook.store import SpoolWriter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        writer = SpoolWriter(Path(sys.argv[1]) / "run" / "spool" / "x.jsonl")
        for step in range(100):
            writer.append(1.0, step, {"loss": 0.5, "nested": {"a": 1}})
        writer.flush()
        writer.close()
    print(json.dumps({"lost": writer.lost_values, "error": writer.error,
                      "warnings": [str(warning.message) for warning in caught]}))
    """
)


def run_with_read_only(store: Path, *command: str) -> Any:
    """Run ``command`` with ``store`` mounted read-only (a bind mount in a user namespace) and
    return the JSON it prints; skip where the machine allows no such mount."""
    store.mkdir()
    mount_read_only = (
        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    )
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux) for a read-only bind mount in a user namespace")
    prefix = [unshare, "-rm", "sh", "-c", mount_read_only, "sh", str(store)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace for a read-only mount here: {probe.stderr.decode()}")
    result = subprocess.run(
        [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_read_only_store_never_fails_tracking_and_counts_what_it_could_not_keep(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    outcome = run_with_read_only(store, sys.executable, "-c", READ_ONLY_CHILD, str(store))
    assert outcome["lost"] == 200, "values, not lines: two in each of 100 lines"
    assert "read-only" in outcome["error"]
    refused, lost = outcome["warnings"]
    assert str(store / "run" / "spool") in refused
    assert "200 values tracked by this process never reached the spool" in lost
    assert "no tracker received them" in lost
    assert not list(store.iterdir())


READ_ONLY_RUN = textwrap.dedent(
    """
    import json, sys, warnings
    import trackhook
    from trackhook.testing import RecordingTracker, recording

    config = json.loads(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recording(RecordingTracker()), trackhook.start_run("ro", config=config):
            for step in range(10):
                trackhook.track_this(step=step, loss=0.5)
    print(json.dumps([str(warning.message) for warning in caught]))
    """
)


def test_a_read_only_store_is_reported_as_the_stores_problem_not_the_trackers(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    # a close that waited out its flush_timeout would outlast the child's 120 s limit
    config = {**recording_config(flush_timeout=600.0, patience=0.0), "run_log_store": str(store)}
    told = run_with_read_only(store, sys.executable, "-c", READ_ONLY_RUN, json.dumps(config))
    assert not [text for text in told if "tracker 'recording' failed" in text], told
    # once for the store, naming its folder; the tracker's report may cite it, not repeat it
    said = f"{store / 'ro' / 'delivery'}: the file system is read-only"
    assert len([text for text in told if said in text]) == 1, told


def test_a_symlink_planted_at_the_spool_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    path = tmp_path / "spool" / "x.jsonl"
    path.parent.mkdir()
    path.symlink_to(target)
    with pytest.warns(trackhook.TrackhookWarning, match="symbolic link"):
        writer = SpoolWriter(path)
        writer.append(1.0, 0, {"loss": 0.5})
        writer.close()
    assert target.read_text() == "precious\n"
    assert writer.lost_values == 1


def test_a_symlink_planted_at_the_spool_folder_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = RunStore(tmp_path / "store")
    store.spool_dir("planted").parent.mkdir(parents=True)
    store.spool_dir("planted").symlink_to(elsewhere)
    config = {**recording_config("do-nothing"), "run_log_store": str(store.root)}
    with (
        pytest.warns(trackhook.TrackhookWarning, match="symbolic link"),
        trackhook.start_run("planted", config=config),
    ):
        trackhook.track_this(step=1, loss=0.5)
    assert os.listdir(elsewhere) == []
