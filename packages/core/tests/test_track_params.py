"""``trackhook.track_params``: values reach trackers as parameters whatever their type, numbers
included, through the spool, retries and ``trackhook sync`` alike; the run log records them as
``track_this`` would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

import trackhook
from trackhook import formats
from trackhook.cli import main
from trackhook.runlog import read_run_log
from trackhook.store import RunStore, iter_spool
from trackhook.testing import PerValueRecordingTracker, RecordingTracker, recording

from .conftest import recording_config
from .sink import read_sink

HERE = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")


class Optimiser(BaseModel):
    name: str
    learning_rate: float = Field(alias="lr")


def test_numbers_tracked_as_params_arrive_as_parameters_not_metrics() -> None:
    with recording() as recorder, trackhook.start_run("hparams", config=recording_config()):
        trackhook.track_params(epochs=5, lr=0.001, optimiser="adam", fused=True)
    assert recorder.metric_records() == []
    assert recorder.params() == {"epochs": 5, "lr": 0.001, "optimiser": "adam", "fused": True}
    assert [type(value) for value in recorder.params().values()] == [int, float, str, bool]


def test_track_params_flattens_nested_dicts_and_dumps_models_at_its_step() -> None:
    optimiser = Optimiser(name="adam", lr=0.01)
    with recording() as recorder, trackhook.start_run("nested", config=recording_config()):
        trackhook.track_params(step=3, model={"layers": 4, "dropout": 0.1}, optimiser=optimiser)
    received = {(record.key, record.step): record.value for record in recorder.param_records()}
    assert received == {
        ("model.layers", 3): 4,
        ("model.dropout", 3): 0.1,
        ("optimiser.name", 3): "adam",
        ("optimiser.lr", 3): 0.01,
    }


def test_track_this_still_sends_numbers_as_metrics_next_to_track_params() -> None:
    with recording() as recorder, trackhook.start_run("both", config=recording_config()):
        trackhook.track_params(lr=0.1)
        trackhook.track_this(step=1, loss=0.5)
    assert recorder.params() == {"lr": 0.1}
    assert recorder.metrics("loss") == {1: 0.5}


def test_a_per_value_tracker_gets_numbers_of_track_params_through_trackhook_log_param() -> None:
    tracker = PerValueRecordingTracker()
    with recording(tracker), trackhook.start_run("per-value", config=recording_config()):
        trackhook.track_params(batch_size=32)
    assert tracker.names().count("trackhook_log_param") == 1
    assert "trackhook_log_metric" not in tracker.names()
    assert tracker.params() == {"batch_size": 32}


def test_the_run_log_records_values_of_track_params_as_track_this_would() -> None:
    with recording(), trackhook.start_run("logged", config=recording_config()) as run:
        trackhook.track_params(lr=0.1, model={"layers": 4})
        trackhook.track_params(step=2, lr=0.05)
    log = read_run_log(run.run_log_path)
    assert log["user_defined_metrics"] == {"lr": {"0": 0.1, "2": 0.05}, "model": {"layers": 4}}
    assert run.user_defined_metrics == log["user_defined_metrics"]


def test_bad_input_to_track_params_records_nothing_of_the_call() -> None:
    with recording() as recorder, trackhook.start_run("bad", config=recording_config()) as run:
        with pytest.raises(trackhook.InvalidValueError, match="'when'"):
            trackhook.track_params(lr=0.1, when=object())
        with pytest.raises(trackhook.InvalidValueError, match="step"):
            trackhook.track_params(step=-1, lr=0.1)
    assert recorder.params() == {}
    assert run.user_defined_metrics == {}


def test_the_spool_marks_a_line_of_track_params_and_only_that_line(tmp_path: Path) -> None:
    with recording(), trackhook.start_run("marked", config=recording_config()):
        trackhook.track_params(lr=0.1)
        trackhook.track_this(loss=0.5)
    (spool,) = RunStore(".run_log_store").spool_files("marked")
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [line.get(formats.SPOOL_AS_PARAMS) for line in lines] == [1, None]
    assert [entry.as_params for entry in iter_spool(spool)] == [True, False]


def test_a_spool_line_of_format_2_without_the_marker_delivers_numbers_as_metrics() -> None:
    folder = Path(".run_log_store") / "older" / "spool"
    folder.mkdir(parents=True)
    (folder / "host-1-abcd.v2.jsonl").write_text('{"t":1700000000.0,"s":0,"v":{"lr":0.1}}\n')
    recorder = RecordingTracker()
    from trackhook.sync import sync_runs

    with recording(recorder):
        sync_runs(["older"], recording_config())
    assert recorder.metrics("lr") == {0: 0.1}
    assert recorder.params() == {}


OWNER_THAT_DIES = """
import os, sys
sys.path.insert(0, {tests!r})
import trackhook
from trackhook.registry import registered
from sink import SinkTracker

config = {{"experiment_tracker": {{"type": "sink", "config": {{"path": {sink!r},
          "fail_first": 1000000}}}}, "delivery": {{"interval": 0.01, "max_backoff": 3600}}}}
with registered("sink", SinkTracker), trackhook.start_run("died", config=config) as run:
    trackhook.track_params(epochs=5, lr=0.001, optimiser="adam")
    trackhook.track_this(step=1, loss=0.5)
    run.flush()
    os.kill(os.getpid(), 9)
"""

SYNC = """
import sys
sys.path.insert(0, {tests!r})
from trackhook.cli import main
from trackhook.registry import registered
from sink import SinkTracker

with registered("sink", SinkTracker):
    sys.exit(main(["sync", "died", "--config", {config!r}]))
"""


def test_sync_after_the_owner_died_delivers_track_params_as_parameters(tmp_path: Path) -> None:
    owner = subprocess.run(
        [sys.executable, "-c", OWNER_THAT_DIES.format(tests=str(HERE), sink="never.jsonl")],
        cwd=tmp_path,
        timeout=120,
    )
    assert owner.returncode == -signal.SIGKILL
    sink = tmp_path / "sink.jsonl"
    config = tmp_path / "sync.yaml"
    config.write_text(
        json.dumps({"experiment_tracker": {"type": "sink", "config": {"path": "sink.jsonl"}}})
    )
    script = SYNC.format(tests=str(HERE), config=str(config))
    synced = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120)
    assert synced.returncode == 0
    received = {
        (line["kind"], line["key"], line["step"]): line["value"]
        for line in read_sink(sink)
        if "key" in line
    }
    assert received == {
        ("param", "epochs", 0): 5,
        ("param", "lr", 0): 0.001,
        ("param", "optimiser", 0): "adam",
        ("metric", "loss", 1): 0.5,
    }
    assert [line["status"] for line in read_sink(sink) if "closed" in line] == ["FAIL"]
    closed = read_run_log(tmp_path / ".run_log_store" / "died.json")
    assert closed[formats.PARAM_KEYS] == ["epochs", "lr", "optimiser"]


def test_the_run_log_names_the_keys_tracked_as_params_and_only_when_there_are_some() -> None:
    with recording(), trackhook.start_run("named", config=recording_config()) as run:
        trackhook.track_params(lr=0.1, model={"layers": 4})
        trackhook.track_this(step=1, loss=0.5, lr=0.2)
    assert read_run_log(run.run_log_path)[formats.PARAM_KEYS] == ["lr", "model"]
    with recording(), trackhook.start_run("unnamed", config=recording_config()) as plain:
        trackhook.track_this(step=1, loss=0.5)
    assert formats.PARAM_KEYS not in read_run_log(plain.run_log_path)


def _sections(out: str) -> dict[str, str]:
    """``trackhook show``'s plain output cut at its section titles."""
    parts: dict[str, str] = {}
    title = ""
    for line in out.splitlines():
        if line in ("Parameters", "Metrics", "Files"):
            title = line
        else:
            parts[title] = parts.get(title, "") + line + "\n"
    return parts


@pytest.mark.parametrize("read_from", ["spool", "run log"])
def test_show_lists_numbers_tracked_as_params_among_the_parameters(
    read_from: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with recording(), trackhook.start_run("shown", config=recording_config()):
        trackhook.track_params(lr=0.1, epochs=5)
        trackhook.track_this(step=1, loss=0.5)
    if read_from == "run log":
        for path in RunStore(".run_log_store").spool_files("shown"):
            path.unlink()
    assert main(["--plain", "show", "shown"]) == 0
    sections = _sections(capsys.readouterr().out)
    metrics, params = sections["Metrics"], sections["Parameters"]
    assert [key for key in ("lr", "epochs", "loss") if key in params] == ["lr", "epochs"]
    assert [key for key in ("lr", "epochs", "loss") if key in metrics] == ["loss"]
