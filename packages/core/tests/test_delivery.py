"""Delivery that never blocks and never loses a value: retries, sync, crashes, concurrency.

These tests use real threads and processes; they wait on conditions with timeouts, never on luck.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

import trackhook
from trackhook.registry import registered
from trackhook.sync import sync_runs
from trackhook.testing import RecordingTracker, recording

from .conftest import recording_config
from .sink import SinkTracker, closes_of, values_of

HERE = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")


def sink_config(path: Path, **settings: object) -> dict[str, object]:
    delivery = {"interval": 0.01, "flush_timeout": 5.0, "max_backoff": 0.05}
    delivery.update(settings.pop("delivery", {}))  # type: ignore[call-overload]
    return {
        "experiment_tracker": {"type": "sink", "config": {"path": str(path), **settings}},
        "delivery": delivery,
    }


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


def test_a_tracker_failing_its_first_calls_gets_everything_exactly_once(tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    with registered("sink", SinkTracker):
        with trackhook.start_run(config=sink_config(sink, fail_first=3)) as run:
            for step in range(500):
                trackhook.track_this(step=step, loss=float(step))
    assert sorted(values_of(sink)) == sorted(("loss", float(s), s) for s in range(500))
    report = json.loads(run.run_log_path.read_text())["experiment_trackers"][0]["delivery"]
    assert report["retried"] >= 3
    assert report["undelivered"] == 0
    assert closes_of(sink) == ["SUCCESS"]


def test_an_always_failing_tracker_keeps_values_for_sync_which_delivers_them_once(
    tmp_path: Path,
) -> None:
    sink = tmp_path / "sink.jsonl"
    failing = sink_config(sink, fail_first=10**9, delivery={"flush_timeout": 0.3})
    with registered("sink", SinkTracker):
        with pytest.warns(trackhook.TrackhookWarning) as caught:
            with trackhook.start_run("down", config=failing):
                for step in range(100):
                    trackhook.track_this(step=step, loss=float(step))
        messages = " ".join(str(w.message) for w in caught)
        assert "'sink'" in messages
        assert "trackhook sync down" in messages
        assert values_of(sink) == []

        fixed = sink_config(sink)
        (first,) = sync_runs(["down"], fixed)
        (second,) = sync_runs(["down"], fixed)
    assert (first.delivered, second.delivered) == ({"sink": 100}, {"sink": 0})
    assert sorted(values_of(sink)) == sorted(("loss", float(s), s) for s in range(100))
    assert closes_of(sink) == ["SUCCESS"], "closed once, by the first sync"


class NeverAnswers(RecordingTracker):
    """A server that accepts the connection and never answers: its hook does not return."""

    release = threading.Event()

    @trackhook.hookimpl
    def trackhook_open_run(self, run: trackhook.RunInfo) -> None:
        self.release.wait(60)


def test_a_tracker_stuck_in_a_hook_is_reported_with_its_undelivered_values(tmp_path: Path) -> None:
    NeverAnswers.release.clear()
    config = recording_config("stuck", flush_timeout=0.2, patience=0.5)
    try:
        with registered("stuck", NeverAnswers), pytest.warns(trackhook.TrackhookWarning) as caught:
            with trackhook.start_run("stuck-run", config=config) as run:
                trackhook.track_this(step=1, loss=0.5, note="kept")
    finally:
        NeverAnswers.release.set()
    messages = " ".join(str(warning.message) for warning in caught)
    assert "could not deliver 2 values" in messages
    assert "still opening the run after" in messages
    assert "trackhook sync stuck-run" in messages
    (report,) = json.loads(run.run_log_path.read_text())["experiment_trackers"]
    assert report["delivery"]["undelivered"] == 2


def test_sync_out_of_time_says_the_run_is_not_closed_yet(tmp_path: Path) -> None:
    store = {"run_log_store": str(tmp_path / "store")}
    with trackhook.start_run("to-sync", config=store):
        trackhook.track_this(loss=0.5)
    NeverAnswers.release.clear()
    try:
        with registered("stuck", NeverAnswers):
            config = {**recording_config("stuck", patience=0.0), **store}
            (result,) = sync_runs(["to-sync"], config, timeout=0.1)
    finally:
        NeverAnswers.release.set()
    assert list(result.not_closed) == ["stuck"]
    assert result.closed_as is None
    assert result.undelivered == {"stuck": 1}


def test_sync_goes_on_past_a_tracker_that_cannot_be_loaded(tmp_path: Path) -> None:
    store = {"run_log_store": str(tmp_path / "store")}
    for run_id in ("first", "second"):
        with trackhook.start_run(run_id, config=store):
            trackhook.track_this(loss=0.5)

    class Misspelled:
        @trackhook.hookimpl
        def trackhook_log_metrc(self) -> None:
            pass

    with registered("typo", Misspelled), recording() as recorder:
        config = {**recording_config("typo", "recording"), **store}
        results = sync_runs(["first", "second"], config)
    assert [list(result.not_loaded) for result in results] == [["typo"], ["typo"]]
    assert [result.delivered for result in results] == [{"recording": 1}, {"recording": 1}]
    assert all(result.closed_as is None for result in results), "typo's run is still to close"
    assert len(recorder.metric_records()) == 2


CRASHING_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import trackhook
from trackhook.registry import registered
from sink import SinkTracker

config = {{"experiment_tracker": {{"type": "sink", "config": {{"path": {sink!r},
          "block_seconds": 3600}}}}}}
with registered("sink", SinkTracker), trackhook.start_run("crashing", config=config):
    step = 0
    while True:
        trackhook.track_this(step=step, loss=float(step))
        print(step, time.time(), flush=True)
        step += 1
        time.sleep(0.001)
"""


def test_sync_delivers_what_a_killed_process_tracked_and_closes_its_run_as_failed(
    tmp_path: Path,
) -> None:
    sink = tmp_path / "sink.jsonl"
    script = CRASHING_CHILD.format(tests=str(HERE), sink=str(sink))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert child.stdout is not None
    tracked: list[tuple[int, float]] = []
    first_seen = None
    for line in child.stdout:
        step, when = line.split()
        tracked.append((int(step), float(when)))
        first_seen = first_seen or time.monotonic()
        if time.monotonic() - first_seen > 2.0:
            break
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    log = json.loads((tmp_path / ".run_log_store" / "crashing.json").read_text())
    assert log["status"] == "RUNNING", "the child never got to close its run"

    with registered("sink", SinkTracker):
        (result,) = sync_runs(["crashing"], sink_config(sink))
    assert result.abandoned
    delivered = Counter(step for _, _, step in values_of(sink))
    must_have = [step for step, when in tracked if when < killed_at - 1.0]
    assert must_have, "the child ran for more than a second"
    assert all(delivered[step] == 1 for step in must_have)
    assert max(delivered.values()) == 1
    assert closes_of(sink) == ["FAIL"]
    log = json.loads((tmp_path / ".run_log_store" / "crashing.json").read_text())
    assert log["status"] == "FAIL"
    assert len(log["user_defined_metrics"]["loss"]) >= len(must_have)


def test_eight_threads_of_ten_thousand_values_are_all_delivered_exactly_once() -> None:
    recorder = RecordingTracker()

    def produce(thread: int) -> None:
        for step in range(10_000):
            trackhook.track_this(step=step, **{f"t{thread}": float(step)})

    with recording(recorder), trackhook.start_run(config=recording_config()) as run:
        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    received = Counter((m.key, m.step) for m in recorder.metric_records())
    assert len(received) == 80_000
    assert set(received.values()) == {1}
    assert len(run.user_defined_metrics) == 8


def _track_in_child(worker: int) -> int:
    for step in range(2000):
        trackhook.track_this(step=step, **{f"w{worker}": float(step)})
    return worker


def test_four_processes_tracking_into_one_run_deliver_everything(tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    with registered("sink", SinkTracker):
        with trackhook.start_run("shared", config=sink_config(sink)) as run:
            trackhook.track_this(parent=1.0)
            with multiprocessing.get_context("fork").Pool(4) as pool:
                assert sorted(pool.map(_track_in_child, range(4))) == [0, 1, 2, 3]
    received = Counter((key, step) for key, _, step in values_of(sink))
    assert len(received) == 4 * 2000 + 1
    assert set(received.values()) == {1}
    assert closes_of(sink) == ["SUCCESS"]
    assert {f"w{n}" for n in range(4)} <= set(run.user_defined_metrics)
    assert len(run.user_defined_metrics["w3"]) == 2000


JOINING_CHILD = """
import trackhook
from trackhook.registry import registered
from sink import SinkTracker

registration = registered("sink", SinkTracker)  # the child's own way to find the type
registration.__enter__()
for step in range(50):
    trackhook.track_this(step=step, child=float(step))
"""


def test_a_python_child_process_joins_the_run_through_the_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "trackhook.yaml"
    sink = tmp_path / "sink.jsonl"
    config_file.write_text(json.dumps(sink_config(sink)))
    with registered("sink", SinkTracker), trackhook.start_run("joined", config=config_file) as run:
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        subprocess.run([sys.executable, "-c", JOINING_CHILD], check=True, cwd=tmp_path, env=env)
    assert run.user_defined_metrics["child"]["49"] == 49.0
    assert len([v for v in values_of(sink) if v[0] == "child"]) == 50


def test_a_slow_tracker_does_not_make_memory_grow_with_the_values() -> None:
    """Values wait in the spool, not in memory: what delivery holds does not grow with them."""
    gate, batches = threading.Event(), threading.Semaphore(0)

    class Slow(RecordingTracker):
        @trackhook.hookimpl
        def trackhook_open_run(self, run: object) -> None:
            gate.wait(30)  # every value is spooled before delivery starts

        @trackhook.hookimpl
        def trackhook_log_batch(self, run: object, metrics: object, params: object) -> None:
            batches.release()
            time.sleep(0.2)

    def peak_while_tracking(config: dict[str, object], values: int) -> int:
        gate.clear()
        tracemalloc.start()
        with trackhook.start_run(config=config):
            for step in range(values):
                trackhook.track_this(step=step, loss=0.5)
            gate.set()
            if config:  # the slow tracker is busy with its second batch: a chunk is in memory
                assert batches.acquire(timeout=30)
                assert batches.acquire(timeout=30)
            _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak

    with registered("slow", Slow):
        slow = recording_config("slow", flush_timeout=0.0)
        peak_while_tracking(slow, 3_000), peak_while_tracking({}, 3_000)  # imports, caches: once
        held_small = peak_while_tracking(slow, 5_000) - peak_while_tracking({}, 5_000)
        held_large = peak_while_tracking(slow, 15_000) - peak_while_tracking({}, 15_000)
    assert held_small > 0
    assert held_large < held_small + 500_000, (held_small, held_large)


def test_sync_refuses_to_rebuild_a_tracker_whose_secrets_were_removed(tmp_path: Path) -> None:
    from trackhook.runlog import write_run_log

    store = tmp_path / ".run_log_store"
    write_run_log(
        store / "r.json",
        {
            "run_id": "r",
            "status": "SUCCESS",
            "experiment_trackers": [
                {"name": "sink", "type": "sink", "config": {"path": "x", "token": "***"}}
            ],
        },
    )
    with pytest.raises(trackhook.ConfigError, match="--config"):
        sync_runs(["r"])


IMPLICIT_POOL = """
import multiprocessing, trackhook

def child(step):
    trackhook.track_this(step=step, child=float(step))

if __name__ == "__main__":
    trackhook.track_this(parent=1.0)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(child, range(4))
"""


def test_a_pool_under_an_implicit_run_tracks_into_that_run(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(IMPLICIT_POOL)
    env = {**os.environ, "TRACKHOOK_RUN_ID": "implicit-pool"}
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path, env=env)
    logs = sorted(path.name for path in (tmp_path / ".run_log_store").glob("*.json"))
    assert logs == ["implicit-pool.json"]
    log = json.loads((tmp_path / ".run_log_store" / "implicit-pool.json").read_text())
    assert log["status"] == "SUCCESS"
    assert log["user_defined_metrics"]["child"] == {str(s): float(s) for s in range(4)}
