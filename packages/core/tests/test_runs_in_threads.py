"""Runs in threads: each thread's run stays its own, and ``os.environ`` ends as it began."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import trackhook

WAIT = 60.0


class RunInThread:
    """A ``start_run`` block in a thread of its own, opened and closed when the test says."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.run: trackhook.Run | None = None
        self._opened = threading.Event()
        self._actions: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name=f"run-{run_id}")

    def open(self) -> None:
        self._thread.start()
        assert self._opened.wait(WAIT)

    def do(self, action: Callable[[], None]) -> None:
        """Run ``action()`` in this run's thread, inside its block, and wait for it."""
        done = threading.Event()

        def action_then_done() -> None:
            action()
            done.set()

        self._actions.put(action_then_done)
        assert done.wait(WAIT)

    def close(self) -> None:
        self._actions.put(None)
        self._thread.join(WAIT)
        assert not self._thread.is_alive()

    def _main(self) -> None:
        with trackhook.start_run(self.run_id, tag=f"tag-{self.run_id}", config={}) as run:
            self.run = run
            self._opened.set()
            for action in iter(self._actions.get, None):
                action()


def trackhook_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("TRACKHOOK_")}


def run_log(run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(".run_log_store", f"{run_id}.json").read_text())
    return document


@pytest.fixture
def two_runs() -> Iterator[tuple[RunInThread, RunInThread]]:
    runs = RunInThread("a"), RunInThread("b")
    yield runs
    for run in runs:
        if run.run is not None and not run.run.closed:
            run.close()


@pytest.mark.parametrize(
    "closing_order", [("a", "b"), ("b", "a")], ids=["first-opened-closes-first", "nested"]
)
def test_runs_in_threads_closing_in_any_order_leave_os_environ_as_it_was(
    closing_order: tuple[str, str],
    two_runs: tuple[RunInThread, RunInThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKHOOK_TAG", "the user's own")
    before = trackhook_variables()
    runs = {run.run_id: run for run in two_runs}
    runs["a"].open()
    runs["b"].open()
    assert os.environ["TRACKHOOK_RUN_ID"] == "b"
    first, second = closing_order
    runs[first].close()
    assert os.environ["TRACKHOOK_RUN_ID"] == second
    assert os.environ["TRACKHOOK_TAG"] == f"tag-{second}"
    runs[second].close()
    assert trackhook_variables() == before


def track_in_child() -> None:
    trackhook.track_this(child=1)


def test_a_child_forked_in_a_thread_joins_that_threads_run_while_a_later_run_is_open(
    two_runs: tuple[RunInThread, RunInThread],
) -> None:
    a, b = two_runs
    a.open()
    b.open()

    def fork_a_child() -> None:
        child = multiprocessing.get_context("fork").Process(target=track_in_child)
        child.start()
        child.join(WAIT)
        assert child.exitcode == 0

    a.do(fork_a_child)
    a.close()
    b.close()
    assert run_log("a")["user_defined_metrics"] == {"child": 1}
    assert run_log("b")["user_defined_metrics"] == {}


def test_child_environment_points_a_subprocess_at_the_given_run(
    two_runs: tuple[RunInThread, RunInThread],
) -> None:
    a, b = two_runs
    a.open()
    b.open()
    assert a.run is not None
    subprocess.run(
        [sys.executable, "-c", "import trackhook; trackhook.track_this(sub=2)"],
        env={**os.environ, **a.run.child_environment()},
        check=True,
    )
    a.close()
    b.close()
    assert run_log("a")["user_defined_metrics"] == {"sub": 2}
    assert run_log("b")["user_defined_metrics"] == {}


TRACKING_AFTER_RUNS_IN_THREADS = """
import threading
import trackhook


def run(run_id, opened, close):
    with trackhook.start_run(run_id, config={}):
        trackhook.track_this(x=1)
        opened.set()
        close.wait()


threads = {}
for run_id in ("a", "b"):  # a opens, then b
    opened, close = threading.Event(), threading.Event()
    threads[run_id] = threading.Thread(target=run, args=(run_id, opened, close)), close
    threads[run_id][0].start()
    opened.wait()
for thread, close in threads.values():  # a closes, then b
    close.set()
    thread.join()
trackhook.track_this(after=2)
print(trackhook.active_run().run_id)
"""


def test_track_this_after_runs_in_threads_have_closed_opens_none_of_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TRACKING_AFTER_RUNS_IN_THREADS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    implicit = result.stdout.strip()
    assert implicit not in ("a", "b")
    store = tmp_path / ".run_log_store"
    for run_id in ("a", "b"):
        log = json.loads((store / f"{run_id}.json").read_text())
        assert (log["status"], log["user_defined_metrics"]) == ("SUCCESS", {"x": 1})
    assert json.loads((store / f"{implicit}.json").read_text())["user_defined_metrics"] == {
        "after": 2
    }


TRACKING_AFTER_A_CLOSED_RUN = """
import trackhook

with trackhook.start_run("closed-run", config={}):
    trackhook.track_this(x=1)
trackhook.track_this(after=2)
print(trackhook.active_run().run_id)
"""


def test_a_leftover_run_id_of_a_run_this_process_closed_opens_a_new_run_and_warns(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TRACKING_AFTER_A_CLOSED_RUN],
        cwd=tmp_path,
        env={**os.environ, "TRACKHOOK_RUN_ID": "closed-run"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    implicit = result.stdout.strip()
    assert implicit != "closed-run"
    assert "names run 'closed-run', which this process has closed" in result.stderr
    assert f"tracks into a new run, {implicit!r}" in result.stderr
    closed = json.loads((tmp_path / ".run_log_store" / "closed-run.json").read_text())
    assert (closed["status"], closed["user_defined_metrics"]) == ("SUCCESS", {"x": 1})
