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

    limit, space_returns, held_bytes = (int(argument) for argument in sys.argv[1:4])
    trackhook.store._MAX_HELD_BYTES = held_bytes
    config = json.loads(sys.argv[4])
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    tracker = RecordingTracker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recording(tracker), trackhook.start_run("full", config=config) as run:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
            for step in range(TOTAL):
                trackhook.track_this(step=step, loss=float(step))
                if step == TOTAL // 2 and space_returns:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
                    time.sleep(1.5)  # the flush thread writes what was held meanwhile
    print(json.dumps({
        "warnings": [str(warning.message) for warning in caught],
        "received": [record.step for record in tracker.metric_records()],
        "spool": run._spool.run_log_entry(),  # what the run log records of the spool
    }))
    """
).replace("TOTAL", str(TOTAL))


def run_child(
    tmp_path: Path, *, limit: int, space_returns: bool, held_bytes: int = 64 << 20
) -> dict[str, Any]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    config = json.dumps(recording_config(flush_timeout=60.0))
    arguments = [str(limit), str(int(space_returns)), str(held_bytes), config]
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
    outcome = run_child(tmp_path, limit=300_000, space_returns=True)
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
    outcome = run_child(tmp_path, limit=1_000_000, space_returns=False, held_bytes=200_000)
    store = tmp_path / ".run_log_store"
    spooled = spooled_steps(store)
    assert spooled == list(range(len(spooled))), "a whole prefix, no torn line"
    assert 0 < len(spooled) < TOTAL
    assert outcome["spool"]["lost_values"] == TOTAL - len(spooled)
    assert "file size limit" in outcome["spool"]["error"]
    assert sorted(outcome["received"]) == spooled
    spool_warnings = [text for text in outcome["warnings"] if "spool" in text]
    assert len(spool_warnings) == 2, "one when the disk refuses, one when values start to drop"
    assert "dropped" in spool_warnings[1]


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


def test_a_read_only_store_never_fails_tracking_and_counts_what_it_could_not_keep(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    mount_read_only = (
        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    )
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux) for a read-only bind mount in a user namespace")
    command = [unshare, "-rm", "sh", "-c", mount_read_only, "sh", str(store)]
    probe = subprocess.run([*command, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace for a read-only mount here: {probe.stderr.decode()}")
    result = subprocess.run(
        [*command, sys.executable, "-c", READ_ONLY_CHILD, str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["lost"] == 200, "values, not lines: two in each of 100 lines"
    assert "read-only" in outcome["error"]
    (warning,) = outcome["warnings"]
    assert str(store / "run" / "spool") in warning
    assert not list(store.iterdir())


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
