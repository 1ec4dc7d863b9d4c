"""trackhook's user API into real event files, read back as TensorBoard's UI reads them."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

import trackhook
from trackhook import RunInfo, TrackerLimits
from trackhook.sync import sync_runs
from trackhook_tensorboard import RunWriterClosedError, TensorBoardConfig, TensorBoardTracker

Read = Callable[[Path], Any]  # the read fixture: returns a RunFolder of conftest.py
Table = Callable[[Path], Any]  # the table fixture: the HPARAMS tab of a log folder


class Eggs(BaseModel):
    ham: str = Field(alias="Ham")


def tensorboard_config(**fields: Any) -> dict[str, Any]:
    return {"experiment_tracker": {"type": "tensorboard", "config": fields}}


@pytest.fixture(autouse=True)
def _in_tmp_path(in_tmp_path: Path) -> None:
    """Every test runs in its own folder: ``runs/`` and ``.run_log_store/`` are relative."""


def test_the_spec_example_lands_in_tensorboard(read: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="baseline", config=tensorboard_config()):
        trackhook.track_this(spam="hello", eggs=Eggs(Ham="world"), answer=42.0, is_it_true=False)
        trackhook.track_this(step=1, spam="hey", eggs={"ham": "universe"})
    stored = read(Path("runs", "baseline", run_id))
    assert stored.scalars == {"answer": [(0, 42.0)]}
    assert stored.texts == {
        "spam_0": [(0, "hello")],
        "eggs.Ham_0": [(0, "world")],
        "is_it_true_0": [(0, "False")],
        "spam_1": [(1, "hey")],
        "eggs.ham_1": [(1, "universe")],
    }
    assert stored.hparams == {
        "trackhook.run_id": run_id,
        "spam_0": "hello",
        "eggs.Ham_0": "world",
        "is_it_true_0": False,
        "spam_1": "hey",
        "eggs.ham_1": "universe",
    }
    assert stored.status == "SUCCESS"


def test_ten_thousand_values_all_arrive(read: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="many", config=tensorboard_config()):
        for step in range(10_000):
            trackhook.track_this(step=step, loss=step / 10_000)
    loss = read(Path("runs", "many", run_id)).scalars["loss"]
    assert loss == [(step, pytest.approx(step / 10_000, rel=1e-6)) for step in range(10_000)]


def test_out_of_order_and_repeated_steps_are_all_kept(read: Read, run_id: str) -> None:
    steps = [5, 2, 2, 0, 9, 1]
    with trackhook.start_run(run_id=run_id, tag="steps", config=tensorboard_config()):
        for index, step in enumerate(steps):
            trackhook.track_this(step=step, loss=float(index))
    loss = read(Path("runs", "steps", run_id)).scalars["loss"]
    assert loss == [(step, float(index)) for index, step in enumerate(steps)]


def test_nan_and_infinities_are_written_as_they_are(read: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="odd", config=tensorboard_config()):
        trackhook.track_this(step=0, bound=math.inf, diverged=math.nan)
        trackhook.track_this(step=1, bound=-math.inf)
    stored = read(Path("runs", "odd", run_id)).scalars
    assert stored["bound"] == [(0, math.inf), (1, -math.inf)]
    assert math.isnan(stored["diverged"][0][1])


def test_the_same_run_id_continues_in_the_same_folder(read: Read, run_id: str) -> None:
    for step, loss in [(0, 0.9), (1, 0.5)]:
        with trackhook.start_run(run_id=run_id, tag="resume", config=tensorboard_config()):
            trackhook.track_this(step=step, loss=loss)
    folder = Path("runs", "resume", run_id)
    assert len(list(folder.glob("events.out.tfevents.*.trackhook"))) == 2  # one per opening
    assert len(list(folder.glob("events.out.tfevents.*.trackhook-session"))) == 2  # one per close
    assert read(folder).scalars["loss"] == [(0, pytest.approx(0.9)), (1, pytest.approx(0.5))]


def test_a_failing_block_ends_the_hparams_session_as_failed(read: Read, run_id: str) -> None:
    with pytest.raises(RuntimeError):
        with trackhook.start_run(run_id=run_id, tag="broken", config=tensorboard_config()):
            trackhook.track_this(loss=0.9, optimiser="adam")
            raise RuntimeError("the user's code failed")
    stored = read(Path("runs", "broken", run_id))
    assert stored.status == "FAIL"
    assert stored.scalars == {"loss": [(0, pytest.approx(0.9))]}


def test_a_continued_run_shows_its_latest_close_in_the_hparams_tab(
    table: Table, read: Read
) -> None:
    with trackhook.start_run(run_id="again", tag="resumed", config=tensorboard_config()):
        trackhook.track_this(optimiser="adam", schedule="cosine")
        trackhook.track_this(step=1, loss=0.5)
    _, _, rows = table(Path("runs"))
    assert rows["resumed/again"].status == "SUCCESS"
    with pytest.raises(RuntimeError):
        with trackhook.start_run(run_id="again", tag="resumed", config=tensorboard_config()):
            trackhook.track_this(optimiser="sgd", warm_restart=True)
            trackhook.track_this(step=2, loss=0.75)
            raise RuntimeError("diverged after the restart")
    hparams, _, rows = table(Path("runs"))
    assert sorted(hparams) == ["optimiser_0", "schedule_0", "trackhook.run_id", "warm_restart_0"]
    again = rows["resumed/again"]
    assert (again.hparams, again.metrics, again.status) == (
        {
            "trackhook.run_id": "again",
            "optimiser_0": "sgd",  # the latest value of a parameter tracked in both sessions
            "schedule_0": "cosine",
            "warm_restart_0": True,
        },
        {"loss": 0.75},
        "FAIL",
    )
    assert read(Path("runs", "resumed", "again")).status == "FAIL"


def test_the_hparams_tab_compares_runs_by_their_parameters_and_last_metrics(
    table: Table,
) -> None:
    with trackhook.start_run(run_id="adam", tag="sweep", config=tensorboard_config()):
        trackhook.track_this(optimiser="adam")
        trackhook.track_this(step=1, loss=0.5)
        trackhook.track_this(step=2, loss=0.25)
    with pytest.raises(RuntimeError):
        with trackhook.start_run(run_id="sgd", tag="sweep", config=tensorboard_config()):
            trackhook.track_this(optimiser="sgd", nesterov=True, accuracy=0.75)
            raise RuntimeError("diverged")
    hparams, metrics, rows = table(Path("runs"))
    assert sorted(hparams) == ["nesterov_0", "optimiser_0", "trackhook.run_id"]
    assert sorted(metrics) == ["accuracy", "loss"]
    adam, sgd = rows["sweep/adam"], rows["sweep/sgd"]
    assert (adam.hparams, adam.metrics, adam.status) == (
        {"trackhook.run_id": "adam", "optimiser_0": "adam"},
        {"loss": 0.25},
        "SUCCESS",
    )
    assert (sgd.hparams, sgd.metrics, sgd.status) == (
        {"trackhook.run_id": "sgd", "optimiser_0": "sgd", "nesterov_0": True},
        {"accuracy": 0.75},
        "FAIL",
    )


def test_runs_that_tracked_numbers_only_are_rows_of_the_hparams_tab(table: Table) -> None:
    for run_id, learning_rate, loss in [("fast", 0.1, 0.5), ("slow", 0.01, 0.25)]:
        with trackhook.start_run(run_id=run_id, tag="numbers", config=tensorboard_config()):
            trackhook.track_this(learning_rate=learning_rate)
            trackhook.track_this(step=1, loss=loss)
    _, metrics, rows = table(Path("runs"))
    assert sorted(metrics) == ["learning_rate", "loss"]
    assert rows["numbers/fast"].metrics == pytest.approx({"learning_rate": 0.1, "loss": 0.5})
    assert rows["numbers/slow"].metrics == pytest.approx({"learning_rate": 0.01, "loss": 0.25})


def test_a_key_tracked_as_a_number_and_as_text_keeps_each_kind_readable(
    read: Read, run_id: str
) -> None:
    with trackhook.start_run(run_id=run_id, tag="mixed", config=tensorboard_config()):
        trackhook.track_this(step=0, lr=0.1)
        trackhook.track_this(step=1, lr="auto")
    stored = read(Path("runs", "mixed", run_id))
    assert stored.scalars == {"lr": [(0, pytest.approx(0.1))]}
    assert stored.texts == {"lr_1": [(1, "auto")]}


def test_an_empty_tag_writes_under_the_default_tag_folder(read: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, config=tensorboard_config(default_tag="scratch")):
        trackhook.track_this(loss=0.5)
    assert read(Path("runs", "scratch", run_id)).scalars == {"loss": [(0, 0.5)]}


def test_the_client_context_adds_summaries_to_the_same_run(read: Read, run_id: str) -> None:
    config = tensorboard_config(log_dir="logs")
    with trackhook.start_run(run_id=run_id, tag="native", config=config):
        trackhook.track_this(step=1, loss=0.5)
        with trackhook.get_experiment_tracker_context() as writer:
            writer.add_scalar("mine", 3.0, 7)
            writer.add_text("notes", "by hand", 7)
            assert writer.log_dir == Path("logs", "native", run_id)
    stored = read(Path("logs", "native", run_id))
    assert stored.scalars == {"loss": [(1, 0.5)], "mine": [(7, 3.0)]}
    assert stored.texts == {"notes": [(7, "by hand")]}


def test_summaries_added_after_the_run_closed_are_refused(run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="late", config=tensorboard_config()):
        with trackhook.get_experiment_tracker_context() as writer:
            pass
    with pytest.raises(RunWriterClosedError, match="get_experiment_tracker_context"):
        writer.add_scalar("late", 1.0, 0)


def test_the_run_log_records_the_run_folder(run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="facts", config=tensorboard_config()) as run:
        trackhook.track_this(loss=0.5)
    log = run.run_log_path.read_text(encoding="utf-8")
    assert str(Path("runs", "facts", run_id)) in log


def test_an_invalid_config_names_the_tracker_and_the_field() -> None:
    with pytest.raises(trackhook.TrackhookError, match=r"tensorboard[\s\S]*logdir"):
        with trackhook.start_run(config=tensorboard_config(logdir="runs")):
            pass


def test_closing_a_run_this_process_never_opened_writes_its_session(
    read: Read, tmp_path: Path
) -> None:
    # `trackhook sync` closes the run of a process that died: its tracker starts with the close.
    tracker = TensorBoardTracker(TensorBoardConfig(log_dir=str(tmp_path / "runs")))
    tracker.trackhook_close_run(RunInfo(run_id="orphan", tag="sync"), "FAIL")
    assert read(tmp_path / "runs" / "sync" / "orphan").status == "FAIL"


def test_a_process_that_exits_right_after_tracking_loses_no_value(
    read: Read, tmp_path: Path
) -> None:
    script = (
        "import trackhook\n"
        "for step in range(500):\n"
        "    trackhook.track_this(step=step, loss=step / 500)\n"
    )
    (tmp_path / "trackhook.yaml").write_text(
        "experiment_tracker:\n  type: tensorboard\n", encoding="utf-8"
    )
    env = {"TRACKHOOK_RUN_ID": "implicit", "TRACKHOOK_TAG": "exit", "PATH": ""}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env)
    stored = read(tmp_path / "runs" / "exit" / "implicit")
    assert [step for step, _ in stored.scalars["loss"]] == list(range(500))
    assert stored.status == "SUCCESS"


def test_keys_the_hparams_plugin_reads_are_renamed_not_taken_for_its_data(
    read: Read, run_id: str
) -> None:
    renamed = TrackerLimits(reserved_keys=frozenset({"_hparams_/session_end_info"}))
    with pytest.warns(trackhook.TrackhookWarning, match="_hparams_/session_end_info"):
        with trackhook.start_run(run_id=run_id, tag="reserved", config=tensorboard_config()):
            trackhook.track_this(**{"_hparams_/session_end_info": 1.0})
    stored = read(Path("runs", "reserved", run_id))
    assert stored.scalars == {renamed.storable_key("_hparams_/session_end_info"): [(0, 1.0)]}
    assert stored.status == "SUCCESS"


CRASHING_CHILD = """
import time, trackhook
config = {{"experiment_tracker": {{"type": "tensorboard"}}}}
with trackhook.start_run(run_id="crashing", tag="sync", config=config):
    step = 0
    while True:
        trackhook.track_this(step=step, loss=float(step))
        print(step, time.time(), flush=True)
        step += 1
        time.sleep(0.001)
"""


def test_sync_writes_what_a_killed_process_tracked_and_fails_its_session(
    read: Read, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CHILD.format()],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
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
    child.wait(timeout=30)

    (result,) = sync_runs(["crashing"], {"experiment_tracker": {"type": "tensorboard"}})
    assert result.abandoned
    stored = read(tmp_path / "runs" / "sync" / "crashing")
    written = [step for step, _ in stored.scalars["loss"]]
    must_have = [step for step, when in tracked if when < killed_at - 1.0]
    assert must_have, "the child ran for more than a second"
    assert set(must_have) <= set(written)
    assert stored.status == "FAIL"
    log = json.loads((tmp_path / ".run_log_store" / "crashing.json").read_text())
    assert log["status"] == "FAIL"


FILE_SIZE_LIMITED_CHILD = """
import resource, signal, sys
from pathlib import Path
from trackhook import MetricRecord, RunInfo
from trackhook_tensorboard import TensorBoardConfig, TensorBoardTracker

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
tracker = TensorBoardTracker(TensorBoardConfig(log_dir=sys.argv[1]))
run = RunInfo(run_id="full", tag="disk")
tracker.trackhook_open_run(run)
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, hard))
batches = [[MetricRecord("loss", 0.5, step, 0.0) for step in range(n * 50, n * 50 + 50)]
           for n in range(4)]
failed = 0
for batch in batches:
    try:
        tracker.trackhook_log_batch(run, batch, [])
    except OSError:
        failed += 1
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again: offered again
        tracker.trackhook_log_batch(run, batch, [])
tracker.trackhook_close_run(run, "SUCCESS")
print(failed)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
def test_a_batch_offered_again_after_a_failed_write_is_read_once(
    read: Read, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED_CHILD, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["1"], "exactly one write hit the file size limit"
    stored = read(tmp_path / "runs" / "disk" / "full")
    assert [step for step, _ in stored.scalars["loss"]] == list(range(200))
    assert stored.status == "SUCCESS"
