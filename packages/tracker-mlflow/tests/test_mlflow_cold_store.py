"""A sqlite store that does not exist yet: created whole or not at all, whoever stops or races.

Creating an MLflow sqlite store migrates it for a few seconds; a process stopped then used to
leave a database no MLflow client could open (``_alembic_tmp_experiments already exists``). The
child processes here stop themselves in the middle of that migration, right after the first
statement about alembic's temporary table (a listener on SQLAlchemy's engine, nothing of MLflow
mocked), until the test lets them go on or kills them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

import trackhook
from trackhook import RunInfo
from trackhook_mlflow import MlflowConfig, MlflowTracker, MlflowTrackerError

TRACKHOOK_COMMAND = str(Path(sys.executable).parent / "trackhook")
_WAIT = 180.0

_PAUSE_MID_MIGRATION = """
import os, sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine

signals = Path(sys.argv[1])
paused = []

@event.listens_for(Engine, "after_cursor_execute")
def pause_mid_migration(connection, cursor, statement, *rest):
    if paused or "_alembic_tmp_" not in statement:
        return
    paused.append(True)
    (signals / f"migrating-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while not (signals / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""

_TRACKHOOK_CHILD = (
    _PAUSE_MID_MIGRATION
    + """
import trackhook

config, run_id, tag = sys.argv[2:5]
with trackhook.start_run(run_id, tag, config=config):
    trackhook.track_this(step=1, loss=0.5)
"""
)

_MLFLOW_CHILD = (
    _PAUSE_MID_MIGRATION
    + """
from mlflow import MlflowClient

MlflowClient(sys.argv[2]).search_experiments()
"""
)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Where the sqlite store will be: its folder does not exist yet either."""
    return tmp_path / "stores" / "mlflow.db"


@pytest.fixture
def config_file(tmp_path: Path, store: Path, mlflow_config: Callable[..., dict[str, Any]]) -> Path:
    path = tmp_path / "trackhook.yaml"
    path.write_text(yaml.safe_dump(mlflow_config(f"sqlite:///{store}", flush_timeout=120.0)))
    return path


@pytest.fixture
def signals(tmp_path: Path) -> Path:
    folder = tmp_path / "signals"
    folder.mkdir()
    return folder


def _start(child: str, *arguments: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", child, *arguments])


def _wait_for_migrations(signals: Path, count: int, *children: subprocess.Popen[bytes]) -> None:
    """Wait until ``count`` children are stopped in the middle of their migration."""
    deadline = time.monotonic() + _WAIT
    while len(list(signals.glob("migrating-*"))) < count:
        assert time.monotonic() < deadline, "no child reached the migration"
        assert all(child.poll() is None for child in children), "a child ended early"
        time.sleep(0.05)


def _kill(child: subprocess.Popen[bytes]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=_WAIT)


def _sync(config_file: Path, run_id: str) -> None:
    subprocess.run(
        [TRACKHOOK_COMMAND, "--config", str(config_file), "sync", run_id],
        check=True,
        timeout=_WAIT,
    )


def test_a_process_killed_while_creating_the_store_leaves_no_broken_store(
    store: Path,
    config_file: Path,
    signals: Path,
    names: tuple[str, str],
    find_run: Any,
    history: Any,
) -> None:
    run_id, tag = names
    child = _start(_TRACKHOOK_CHILD, str(signals), str(config_file), run_id, tag)
    _wait_for_migrations(signals, 1, child)
    _kill(child)
    assert not store.exists()

    with trackhook.start_run(f"{run_id}-next", tag, config=str(config_file)):
        trackhook.track_this(step=1, loss=0.25)
    _sync(config_file, run_id)

    client = MlflowClient(f"sqlite:///{store}")
    assert history(client, find_run(client, tag, f"{run_id}-next"), "loss") == [(1, 0.25)]
    assert history(client, find_run(client, tag, run_id), "loss") == [(1, 0.5)]


def test_two_processes_creating_the_same_store_at_once_both_deliver(
    store: Path,
    config_file: Path,
    signals: Path,
    names: tuple[str, str],
    find_run: Any,
    history: Any,
) -> None:
    run_id, tag = names
    children = [
        _start(_TRACKHOOK_CHILD, str(signals), str(config_file), f"{run_id}-{n}", tag)
        for n in range(2)
    ]
    _wait_for_migrations(signals, 2, *children)
    (signals / "go").touch()
    assert [child.wait(timeout=_WAIT) for child in children] == [0, 0]

    client = MlflowClient(f"sqlite:///{store}")
    for n in range(2):
        assert history(client, find_run(client, tag, f"{run_id}-{n}"), "loss") == [(1, 0.5)]
    assert [path.name for path in store.parent.iterdir()] == [store.name]


def test_a_temporary_file_of_a_process_that_is_gone_is_removed_the_next_time(
    store: Path, config_file: Path, names: tuple[str, str]
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    store.parent.mkdir()
    left = [
        store.with_name(f".{store.name}.{pid}-0a1b2c3d.creating")
        for pid in (int(gone.stdout), os.getpid())
    ]
    for path in left:
        path.write_bytes(b"half a database")
        os.utime(path, (time.time() - 3600, time.time() - 3600))

    with trackhook.start_run(*names, config=str(config_file)):
        trackhook.track_this(step=1, loss=0.5)
    assert sorted(path.name for path in store.parent.iterdir()) == sorted(
        [store.name, left[1].name]
    )


def test_a_store_created_by_the_tracker_keeps_mlflows_artifact_root(
    tmp_path: Path, store: Path, config_file: Path, names: tuple[str, str], find_run: Any
) -> None:
    run_id, tag = names
    with trackhook.start_run(run_id, tag, config=str(config_file)):
        trackhook.track_this(step=1, loss=0.5)
    made_by_mlflow = MlflowClient(f"sqlite:///{tmp_path / 'plain.db'}")
    expected_root = made_by_mlflow.get_experiment("0").artifact_location.rsplit("/", 1)[0]

    client = MlflowClient(f"sqlite:///{store}")
    mlflow_run = find_run(client, tag, run_id)
    assert client.get_experiment("0").artifact_location == f"{expected_root}/0"
    assert mlflow_run.info.artifact_uri == (
        f"{expected_root}/{mlflow_run.info.experiment_id}/{mlflow_run.info.run_id}/artifacts"
    )


def test_a_store_left_half_migrated_is_named_with_its_repair(
    store: Path, signals: Path, names: tuple[str, str]
) -> None:
    uri = f"sqlite:///{store}"
    store.parent.mkdir()  # MLflow 3.5 (the oldest supported) creates no missing folder itself
    child = _start(_MLFLOW_CHILD, str(signals), uri)  # MLflow alone creates it in place
    _wait_for_migrations(signals, 1, child)
    _kill(child)
    tracker = MlflowTracker(MlflowConfig(tracking_uri=uri))

    with pytest.raises(MlflowTrackerError, match=r"half-migrated.*_alembic_tmp_") as raised:
        tracker.trackhook_open_run(RunInfo(*names, time.time()))
    assert f"remove the file ({store})" in str(raised.value)

    store.unlink()  # the repair the message gives
    assert tracker.trackhook_open_run(RunInfo(*names, time.time()))["mlflow_run_id"]
