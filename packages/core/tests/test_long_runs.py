"""Long runs in bounded memory (SPEC.md, "Long runs"): the values live in the spool on disk.

No timing is asserted here: bench/bench_long_runs.py measures memory and time for millions of
values. These tests show the behaviour: what a run holds does not grow with its values, the run
log still holds every value in runnable's shape, and the commands read long runs a key at a time.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook.cli import main
from trackhook.runlog import strict_json
from trackhook.sync import sync_runs

DO_NOTHING = {"experiment_trackers": [{"type": "do-nothing"}], "delivery": {"interval": 0.01}}
STORE = Path(".run_log_store")


def run_log(run_id: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((STORE / f"{run_id}.json").read_text())
    return result


def peak_bytes(action: Callable[[], object]) -> int:
    """The most memory Python allocated while ``action`` ran, over what it held before."""
    tracemalloc.start()
    try:
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def track_steps(run_id: str, steps: int) -> None:
    with trackhook.start_run(run_id, config=DO_NOTHING):
        for step in range(steps):
            trackhook.track_this(step=step, **{f"metric_{n}": step * 0.5 + n for n in range(10)})


# -- what a run holds ----------------------------------------------------------------------------


def test_the_memory_a_run_holds_does_not_grow_with_its_values() -> None:
    track_steps("warm-up", 2_000)  # imports and caches, once
    short = peak_bytes(lambda: track_steps("short", 2_000))  # 20 k values
    long = peak_bytes(lambda: track_steps("long", 30_000))  # 300 k values
    # Holding them took ~30 MB more for the long run (a dict per key, copied at close); what
    # is left is the index's few megabytes on their way to disk.
    assert long - short < 6_000_000, (short, long)
    assert run_log("long")["value_count"] == 300_000


# -- the run log's shape -------------------------------------------------------------------------


def _child_tracks(worker: int) -> int:
    for step in range(1_000):
        trackhook.track_this(step=step, **{f"worker_{worker}": float(step)})
    return worker


def _track_the_long_run(reference: dict[str, dict[int, Any]]) -> None:
    """~100 k values, with replaced values, nested dicts, NaN and infinities, a value at step 0
    only, a pool of processes and a resumed session; ``reference`` gets them as tracked."""

    def track(step: int = 0, **values: Any) -> None:
        trackhook.track_this(step=step, **values)
        for key, value in values.items():
            reference.setdefault(key, {})[step] = value

    with trackhook.start_run("shape", config=DO_NOTHING):
        track(learning_rate=0.001, optimizer={"name": "adam", "betas": [0.9, 0.999]})
        for step in range(8_000):
            values: dict[str, Any] = {f"m{n}": step / 7 + n for n in range(10)}
            values["odd"] = math.nan if step % 1000 == 3 else math.inf if step % 1000 == 4 else 1
            values["nested"] = {"a": step, "b": {"c": -math.inf if step == 5 else step * 0.1}}
            track(step, **values)
        for step in range(0, 8_000, 97):
            track(step, m3="replaced")  # the same key at the same step again replaces it
        track(2, note="late")
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert sorted(pool.map(_child_tracks, range(2))) == [0, 1]
        for worker in range(2):
            reference[f"worker_{worker}"] = {step: float(step) for step in range(1_000)}
    with trackhook.start_run("shape", config=DO_NOTHING):  # resumed
        for step in range(7_990, 8_010):
            track(step, m0=-1.0)
        track(m9=0.5)


def _as_runnable(reference: dict[str, dict[int, Any]]) -> dict[str, Any]:
    """The reference in runnable's shape, built the naive way."""
    return {
        key: steps[0] if list(steps) == [0] else {str(step): steps[step] for step in sorted(steps)}
        for key, steps in reference.items()
    }


def test_the_run_log_of_a_long_run_holds_every_value_in_runnables_shape() -> None:
    reference: dict[str, dict[int, Any]] = {}
    _track_the_long_run(reference)
    expected = strict_json(_as_runnable(reference))
    log = run_log("shape")
    assert log["user_defined_metrics"] == expected
    in_the_parent = [key for key in expected if not key.startswith("worker_")]
    assert [key for key in log["user_defined_metrics"] if key in in_the_parent] == in_the_parent
    assert list(log)[-1] == "user_defined_metrics", "values last: the other fields read alone"
    # nested dicts count by their leaves (a list is one value)
    assert log["value_count"] == sum(
        len(steps) * (2 if key in ("optimizer", "nested") else 1)
        for key, steps in reference.items()
    )
    assert len(log["resumed_at"]) == 1


def test_user_defined_metrics_are_read_from_the_spool_when_asked_for() -> None:
    reference: dict[str, dict[int, Any]] = {}
    _track_the_long_run(reference)
    with trackhook.start_run("shape", config=DO_NOTHING) as run:
        metrics = run.user_defined_metrics  # while the run is open: every session's values
    # NaN and the infinities come back as floats
    assert json.dumps(metrics, sort_keys=True) == json.dumps(
        _as_runnable(reference), sort_keys=True
    )
    assert not hasattr(run, "_record")


def test_user_defined_metrics_of_an_open_run_hold_what_a_joined_process_tracked() -> None:
    with trackhook.start_run("joined", config=DO_NOTHING) as run:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.map(_child_tracks, [7]) == [7]
        assert run.user_defined_metrics["worker_7"]["999"] == 999.0


# -- show, runs and sync on long runs --------------------------------------------------------------


def command(*arguments: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(arguments)) == 0
    return out.getvalue()


def test_show_and_runs_read_a_long_run_a_key_at_a_time() -> None:
    track_steps("big", 30_000)  # 300 k values
    command("show", "big"), command("runs")  # imports and caches, once
    assert peak_bytes(lambda: command("show", "big")) < 8_000_000
    assert peak_bytes(lambda: command("runs")) < 2_000_000
    shown = command("show", "big", "--plain")
    assert "0..29999 (30000)" in shown
    assert "14999.5" in shown  # metric_0's last value
    assert " 300000 " in command("runs", "--plain")
    assert json.loads(command("show", "big", "--json")) == run_log("big")


KILLED = """
import os, trackhook
config = {"experiment_trackers": [{"type": "do-nothing"}]}
with trackhook.start_run("abandoned", config=config) as run:
    for step in range(20_000):
        trackhook.track_this(step=step, **{f"metric_{n}": float(step) for n in range(10)})
    run.flush()
    print("tracked", flush=True)
    os.kill(os.getpid(), 9)
"""


def test_plot_reads_a_long_run_into_thinned_curves_that_keep_its_spikes() -> None:
    from trackhook.cli._curves import CURVE_POINTS
    from trackhook.cli._runlogs import find_run
    from trackhook.store import RunStore

    with trackhook.start_run("spiky", config=DO_NOTHING):
        for step in range(100_000):
            loss = 1000.0 if step == 54_321 else -1000.0 if step == 77_777 else 1.0 / (step + 1)
            trackhook.track_this(step=step, loss=loss, note="text")
    run = find_run(RunStore(STORE), "spiky")
    run.curves()  # imports and caches, once
    assert peak_bytes(run.curves) < 8_000_000  # as `show`: the index, not the values
    (curve,) = run.curves().values()  # "note" is no metric
    assert (curve.key, curve.tracked) == ("loss", 100_000)
    assert len(curve.steps) <= CURVE_POINTS
    assert curve.steps == sorted(curve.steps)
    assert (curve.steps[0], curve.steps[-1]) == (0, 99_999)
    assert max(curve.values) == 1000.0
    assert min(curve.values) == -1000.0
    assert curve.steps[curve.values.index(1000.0)] == 54_321


def test_sync_rebuilds_an_abandoned_long_run_from_its_spool_a_piece_at_a_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "tracked\n"
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert run_log("abandoned")["status"] == "RUNNING"
    with pytest.raises(trackhook.UnknownRunError):
        sync_runs(["sync-warm-up"])  # imports, once
    peak = peak_bytes(lambda: sync_runs(["abandoned"]))
    log = run_log("abandoned")
    assert log["status"] == "FAIL"
    assert log["value_count"] == 200_000
    assert log["user_defined_metrics"]["metric_9"]["19999"] == 19999.0
    assert peak < 8_000_000, peak  # the 200 k values took ~40 MB in memory
    assert list((STORE / "abandoned" / "index").glob("*.sqlite")) == [], "the dead one's index"


# -- run logs written by the previous trackhook ----------------------------------------------------


def _previous_run_log(indent: int | None) -> dict[str, Any]:
    """A run log as trackhook wrote it before values were streamed: one ``json.dumps``, values
    not last (``resumed_at`` came after them)."""
    document = {
        "run_id": f"old-{indent}",
        "tag": "t",
        "status": "SUCCESS",
        "start_time": "2026-11-30T10:00:00+00:00",
        "end_time": "2026-11-30T10:05:00+00:00",
        "owner": {"host": "elsewhere", "pid": 1},
        "rank": None,
        "config_source": "trackhook.yaml",
        "experiment_trackers": [
            {"name": "do-nothing", "type": "do-nothing", "delivery": {"delivered": 5}}
        ],
        "trackers_not_loaded": [],
        "user_defined_metrics": {"loss": {"1": 0.5, "2": "NaN"}, "lr": 0.1, "opt": {"b": 2}},
        "resumed_at": ["2026-11-30T10:01:00+00:00"],
    }
    STORE.mkdir(exist_ok=True)
    text = json.dumps(document, indent=indent)
    (STORE / f"old-{indent}.json").write_text(text + "\n")
    return document


@pytest.mark.parametrize("indent", [4, None], ids=["indented", "compact"])
def test_a_run_log_written_by_the_previous_trackhook_is_read_by_show_runs_and_sync(
    indent: int | None,
) -> None:
    document = _previous_run_log(indent)
    run_id = document["run_id"]
    shown = command("show", run_id, "--plain")
    assert all(key in shown for key in ("loss", "lr", "opt.b"))
    assert json.loads(command("show", run_id, "--json")) == document
    listed = command("runs", "--plain")
    assert run_id in listed
    assert " 4 " in listed  # loss at 2 steps, lr, opt.b
    (result,) = sync_runs([run_id], DO_NOTHING)
    assert result.status == "SUCCESS"
    synced = run_log(run_id)
    assert synced["user_defined_metrics"] == document["user_defined_metrics"]
    assert synced["resumed_at"] == document["resumed_at"]
    assert list(synced)[-1] == "user_defined_metrics"


def test_a_run_resumed_over_a_previous_run_log_keeps_its_values_when_it_opens() -> None:
    document = _previous_run_log(None)
    with trackhook.start_run("old-None", config=DO_NOTHING):
        opened = run_log("old-None")
    assert opened["user_defined_metrics"] == document["user_defined_metrics"]
    assert opened["status"] == "RUNNING"
    assert list(opened)[-1] == "user_defined_metrics", "values last: the next writer skips them"
