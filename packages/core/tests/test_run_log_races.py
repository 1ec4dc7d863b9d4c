"""The run log under races: every writer merges under a lock, counts add up, nothing goes back.

Each test runs real processes: owners of a run as ``python -c`` children, ``trackhook sync`` as the
command a user types in a second shell. The tracker is a small plugin installed as a distribution
in the test's folder, so that every process finds it through its entry point; it appends what it
receives to a file, with the pid of the process that sent it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .fake_distribution import install
from .sink import closes_of, read_sink, values_of

TRACKHOOK = str(Path(sys.executable).parent / "trackhook")
WAIT = 120.0
"""Seconds any process of a test may take: generous, for a loaded machine."""

RACE_SINK = """
import json, os, time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

import trackhook


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    down: bool = False
    down_until: str | None = None
    block_seconds: float = 0.0


class RaceSink:
    config_model = Settings

    def __init__(self, config):
        self.config = config

    def _answer(self):
        gate = self.config.down_until
        if self.config.down or (gate is not None and not Path(gate).exists()):
            raise ConnectionError("the server is down")

    def _append(self, lines):
        fd = os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, "".join(json.dumps(line) + "\\n" for line in lines).encode())
        finally:
            os.close(fd)

    @trackhook.hookimpl
    def trackhook_open_run(self, run):
        self._answer()

    @trackhook.hookimpl
    def trackhook_log_batch(self, run, metrics, params):
        self._answer()
        time.sleep(self.config.block_seconds)
        pid = os.getpid()
        lines = [{"key": m.key, "value": m.value, "step": m.step, "pid": pid} for m in metrics]
        self._append(lines)

    @trackhook.hookimpl
    def trackhook_close_run(self, run, status):
        self._answer()
        self._append([{"closed": run.run_id, "status": status}])
"""

OWNER = """
import sys, time
from pathlib import Path

import trackhook

run_id, key, first, count, wait_for, then, config = sys.argv[1:]
with trackhook.start_run(run_id, config=config or None):
    for step in range(int(first), int(first) + int(count)):
        trackhook.track_this(step=step, **{key: float(step)})
    print("tracked", flush=True)
    while wait_for and not Path(wait_for).exists():
        time.sleep(0.01)
    for step in range(int(first) + int(count), int(first) + int(count) + int(then)):
        trackhook.track_this(step=step, **{key: float(step)})
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the test's processes: the plugin's distribution on their path."""
    install(
        tmp_path, monkeypatch, "race-sink", {"race_sink": RACE_SINK}, "sink = race_sink:RaceSink"
    )
    paths = [str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def sink_config(folder: Path, name: str, flush_timeout: float = 30.0, **sink: object) -> Path:
    """A configuration file sending to the race sink ``folder / "sink.jsonl"``."""
    config = {
        "experiment_tracker": {
            "type": "sink",
            "config": {"path": str(folder / "sink.jsonl"), **sink},
        },
        "delivery": {"interval": 0.01, "max_backoff": 0.05, "flush_timeout": flush_timeout},
    }
    path = folder / name
    path.write_text(json.dumps(config))
    return path


def start_owner(
    env: dict[str, str],
    run_id: str,
    *,
    key: str = "loss",
    first: int = 0,
    count: int = 1000,
    wait_for: Path | str = "",
    then: int = 0,
    config: Path | str = "",
) -> subprocess.Popen[str]:
    """An owner of ``run_id`` tracking ``count`` values of ``key``, waiting for the file
    ``wait_for``, then tracking ``then`` more before it closes the run."""
    arguments = [run_id, key, str(first), str(count), str(wait_for), str(then), str(config)]
    return subprocess.Popen(
        [sys.executable, "-c", OWNER, *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_tracked(owner: subprocess.Popen[str]) -> None:
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line == "tracked\n", owner.stderr.read() if owner.stderr else line


def finished(owner: subprocess.Popen[str]) -> str:
    """Wait for ``owner`` to end well; its standard error."""
    _, errors = owner.communicate(timeout=WAIT)
    assert owner.returncode == 0, errors
    return errors


def sync(env: dict[str, str], *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TRACKHOOK, "sync", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def synced(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a ``trackhook sync``; its exit code and all it printed."""
    out, errors = process.communicate(timeout=WAIT)
    return process.returncode, out + errors


def run_log(run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(f".run_log_store/{run_id}.json").read_text())
    return document


def delivered(run_id: str) -> int:
    (tracker,) = run_log(run_id)["experiment_trackers"]
    count: int = tracker["delivery"]["delivered"]
    return count


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT} s"
        time.sleep(0.02)


# -- item 1: a sync overlapping the owner's close ------------------------------------------------


def test_a_sync_overlapping_the_owners_close_keeps_the_closed_run_log(
    tmp_path: Path, env: dict[str, str]
) -> None:
    down = sink_config(tmp_path, "trackhook.yaml", flush_timeout=1.0, down=True)
    owner = start_owner(env, "overlap", wait_for=tmp_path / "never", config=down)
    wait_until_tracked(owner)
    time.sleep(1.0)
    overlapping = sync(env, "overlap", "--timeout", "4")
    time.sleep(1.0)
    (tmp_path / "never").touch()  # the owner closes while the sync runs
    finished(owner)
    code, out = synced(overlapping)
    assert code == 1, out
    assert "still undelivered sink: 1000" in out

    log = run_log("overlap")
    assert log["status"] == "SUCCESS"
    assert len(log["user_defined_metrics"]["loss"]) == 1000

    up = sink_config(tmp_path, "up.yaml")
    code, out = synced(sync(env, "overlap", "--config", str(up)))
    assert code == 0, out
    assert run_log("overlap")["status"] == "SUCCESS", "a run its owner closed is never re-closed"
    assert closes_of(tmp_path / "sink.jsonl") == ["SUCCESS"]
    assert Counter(values_of(tmp_path / "sink.jsonl")) == {
        ("loss", float(step), step): 1 for step in range(1000)
    }
    assert delivered("overlap") == 1000


# -- item 2: delivery counts add up ----------------------------------------------------------------


def test_values_delivered_by_a_sync_during_the_run_and_by_its_owner_add_up(
    tmp_path: Path, env: dict[str, str]
) -> None:
    gate = tmp_path / "server-is-up"
    owners = sink_config(tmp_path, "owner.yaml", down_until=str(gate))
    owner = start_owner(env, "live", count=500, wait_for=gate, then=500, config=owners)
    wait_until_tracked(owner)  # the owner's tracker is down: its values wait in the spool

    code, out = synced(sync(env, "live", "--config", str(sink_config(tmp_path, "up.yaml"))))
    assert code == 0, out
    assert "the run is still open" in out
    gate.touch()  # the owner's tracker comes up: it delivers what it tracks from now on
    finished(owner)

    records = [record for record in read_sink(tmp_path / "sink.jsonl") if "key" in record]
    by_process = Counter(record["pid"] for record in records)
    assert len(records) == 1000
    assert len(by_process) == 2, "the sync delivered part, the owner the rest"
    assert delivered("live") == 1000


def test_the_counts_of_two_syncs_at_once_add_up_and_neither_gives_up(
    tmp_path: Path, env: dict[str, str]
) -> None:
    down = sink_config(tmp_path, "down.yaml", flush_timeout=0.2, down=True)
    for first in (0, 500):  # two sessions of the run: two spool files, as two processes give
        finished(start_owner(env, "twice", first=first, count=500, config=down))
    assert delivered("twice") == 0

    up = sink_config(tmp_path, "up.yaml", block_seconds=1.0)
    both = [sync(env, "twice", "--config", str(up)) for _ in range(2)]
    for process in both:
        code, out = synced(process)
        assert code == 0, out
    assert closes_of(tmp_path / "sink.jsonl") == ["SUCCESS"]
    assert len(set(values_of(tmp_path / "sink.jsonl"))) == 1000
    assert delivered("twice") == 1000


def test_the_counts_of_several_owners_of_one_run_id_add_up(
    tmp_path: Path, env: dict[str, str]
) -> None:
    config = sink_config(tmp_path, "up.yaml")
    sink = tmp_path / "sink.jsonl"
    first = start_owner(env, "shared", key="a", wait_for=tmp_path / "close-a", config=config)
    wait_until_tracked(first)
    wait_for(lambda: len(values_of(sink)) == 1000, "the first owner delivered its values")
    second = start_owner(env, "shared", key="b", wait_for=tmp_path / "close-b", config=config)
    wait_until_tracked(second)
    (tmp_path / "close-a").touch()
    finished(first)
    (tmp_path / "close-b").touch()
    finished(second)

    assert Counter(key for key, _, _ in values_of(sink)) == {"a": 1000, "b": 1000}
    log = run_log("shared")
    assert log["status"] == "SUCCESS"
    assert {key: len(steps) for key, steps in log["user_defined_metrics"].items()} == {
        "a": 1000,
        "b": 1000,
    }
    assert delivered("shared") == 2000


def test_each_writer_adds_only_the_counts_it_has_not_added_yet_rejections_by_reason_too() -> None:
    from trackhook.runlog import CountsWritten

    def entry(delivered: int, reasons: dict[str, int]) -> dict[str, Any]:
        rejected = sum(reasons.values())
        delivery = {"delivered": delivered, "rejected": rejected, "rejected_reasons": reasons}
        return {"name": "sink", "type": "sink", "delivery": delivery}

    owner, sync = CountsWritten(), CountsWritten()
    at_open = owner.merge([], [entry(0, {})])
    owner.remember([entry(0, {})])
    by_sync = sync.merge(at_open, [entry(300, {"Value out of range": 2})])
    mid_run = owner.merge(by_sync, [entry(100, {"Value out of range": 1})])
    owner.remember([entry(100, {"Value out of range": 1})])
    (final,) = owner.merge(mid_run, [entry(250, {"Value out of range": 1, "Invalid value": 4})])
    assert final["delivery"]["delivered"] == 550
    assert final["delivery"]["rejected"] == 7
    assert final["delivery"]["rejected_reasons"] == {"Value out of range": 3, "Invalid value": 4}


# -- item 5: a run log that cannot be written -----------------------------------------------------

FULL_DISK = """
import resource
import trackhook

with trackhook.start_run("full-disk"):
    # the spool line fits under the limit; the indented run log written at close does not
    resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))
    trackhook.track_this(**{f"key_{n:04d}": float(n) for n in range(400)})
print("closed", flush=True)
"""


def test_a_run_log_that_cannot_be_written_is_warned_about_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK], capture_output=True, text=True, timeout=WAIT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "closed\n"
    assert "Traceback" not in result.stderr
    warning = " ".join(result.stderr.split())
    # the first file refused is the index of the run's values (SQLite says "disk I/O error")
    assert "could not write the run log of run 'full-disk' in .run_log_store (" in warning
    assert [path.name for path in tmp_path.rglob("*.tmp*")] == []
    assert run_log("full-disk")["status"] == "RUNNING", "the run log written at open is intact"


# -- item 10: trackers named only by a run log that others could have written ---------------------


def owner_whose_tracker_was_down(tmp_path: Path, env: dict[str, str], run_id: str) -> Path:
    """A closed run whose values wait for a tracker that is up now; the gate that brought it up."""
    gate = tmp_path / "server-is-up"
    config = sink_config(tmp_path, "owner.yaml", flush_timeout=0.2, down_until=str(gate))
    finished(start_owner(env, run_id, count=10, config=config))
    gate.touch()
    return gate


def test_a_store_only_the_user_can_write_is_synced_to_the_trackers_its_run_log_recorded(
    tmp_path: Path, env: dict[str, str]
) -> None:
    owner_whose_tracker_was_down(tmp_path, env, "trusted")
    code, out = synced(sync(env, "trusted"))
    assert code == 0, out
    assert len(values_of(tmp_path / "sink.jsonl")) == 10


def test_a_store_others_can_write_is_not_synced_to_trackers_only_its_run_log_names(
    tmp_path: Path, env: dict[str, str]
) -> None:
    owner_whose_tracker_was_down(tmp_path, env, "planted")
    Path(".run_log_store").chmod(0o777)
    code, out = synced(sync(env, "planted"))
    assert code == 2, out
    message = " ".join(out.split())
    assert "can be written by other users (mode 777)" in message
    assert "trackhook sync --config FILE" in message
    assert values_of(tmp_path / "sink.jsonl") == []
