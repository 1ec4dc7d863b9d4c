"""``trackhook.File``: held in the run store when ``track_this`` returns, delivered once per
tracker through ``trackhook_log_file`` (or counted ``skipped``), through outages and ``trackhook
sync``, recorded in the run log; bad input refused with nothing recorded."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook import formats
from trackhook.cli import main
from trackhook.registry import registered
from trackhook.runlog import read_run_log
from trackhook.store import RunStore
from trackhook.sync import sync_runs
from trackhook.testing import RecordingTracker, recording, tiny_png

from .conftest import recording_config
from .sink import FileSinkTracker, SinkTracker, files_of, read_sink

HERE = Path(__file__).parent
STORE = Path(".run_log_store")
pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")


def a_file(name: str = "epoch-5.pt", size: int = 100_000) -> tuple[Path, bytes]:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = os.urandom(size)
    path.write_bytes(content)
    return path, content


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sink_config(path: Path, kind: str = "file-sink", **settings: object) -> dict[str, Any]:
    return {
        "experiment_tracker": {"type": kind, "config": {"path": str(path), **settings}},
        "delivery": {"interval": 0.01, "flush_timeout": 10.0, "max_backoff": 0.05},
    }


def test_a_file_reaches_the_tracker_with_its_bytes_at_its_step() -> None:
    path, content = a_file()
    with recording() as recorder, trackhook.start_run("one", config=recording_config()):
        trackhook.track_this(step=5, checkpoint=trackhook.File(path))
    (record,) = recorder.file_records()
    assert (record.key, record.step, record.name, record.kind) == (
        "checkpoint",
        5,
        path.name,
        "file",
    )
    assert (record.sha256, record.size) == (sha256(content), len(content))
    assert record.path.is_absolute()
    assert record.path.name == path.name
    assert recorder.files() == {("checkpoint", 5): content}


def test_changing_or_deleting_the_original_after_track_this_changes_nothing() -> None:
    rewritten, kept = a_file("rewritten.bin")
    deleted, gone = a_file("deleted.bin")
    with recording() as recorder, trackhook.start_run("changed", config=recording_config()):
        trackhook.track_this(first=trackhook.File(rewritten), second=trackhook.File(deleted))
        with open(rewritten, "r+b") as file:  # in place: the same inode, other bytes
            file.write(b"\0" * len(kept))
        deleted.unlink()
    assert recorder.files() == {("first", 0): kept, ("second", 0): gone}


def test_the_run_log_records_each_file_in_the_per_step_shape_pointing_at_its_content() -> None:
    path, content = a_file()
    with recording(), trackhook.start_run("logged", config=recording_config()) as run:
        trackhook.track_this(step=5, checkpoint=trackhook.File(path), loss=0.5)
    recorded = read_run_log(run.run_log_path)[formats.METRICS]["checkpoint"]["5"]
    assert recorded == {
        "file": f"logged/files/{sha256(content)}/{path.name}",
        "name": path.name,
        "kind": "file",
        "sha256": sha256(content),
        "size": len(content),
    }
    assert (STORE / recorded["file"]).read_bytes() == content
    assert run.user_defined_metrics["checkpoint"]["5"] == recorded


def test_the_run_log_reports_how_many_files_the_run_holds_and_their_bytes() -> None:
    first, one = a_file("a.bin", 1000)
    second, two = a_file("b.bin", 2000)
    with recording(), trackhook.start_run("held", config=recording_config()) as run:
        trackhook.track_this(a=trackhook.File(first), b=trackhook.File(second))
    held = read_run_log(run.run_log_path)[formats.FILES_HELD]
    assert held == {"folder": "held/files", "count": 2, "bytes": len(one) + len(two)}


def test_the_same_content_tracked_again_under_the_same_name_is_held_once() -> None:
    path, _ = a_file()
    with recording() as recorder, trackhook.start_run("again", config=recording_config()) as run:
        for step in range(3):
            trackhook.track_this(step=step, checkpoint=trackhook.File(path))
    assert len(recorder.file_records()) == 3
    assert read_run_log(run.run_log_path)[formats.FILES_HELD]["count"] == 1


def test_files_in_nested_dicts_reach_trackers_under_dotted_keys_beside_other_values() -> None:
    path, content = a_file("report.html")
    with recording() as recorder, trackhook.start_run("nested", config=recording_config()):
        trackhook.track_this(step=2, eval={"report": trackhook.File(path), "accuracy": 0.9})
    assert recorder.files() == {("eval.report", 2): content}
    assert recorder.metrics("eval.accuracy") == {2: 0.9}


def test_fan_out_sends_each_file_to_every_tracker() -> None:
    path, content = a_file()
    first, second = RecordingTracker(), RecordingTracker()
    config = recording_config("first", "second")
    with recording(first, "first"), recording(second, "second"):
        with trackhook.start_run("fan-out", config=config):
            trackhook.track_this(checkpoint=trackhook.File(path))
    assert first.files() == second.files() == {("checkpoint", 0): content}


def test_a_tracker_without_the_file_hook_counts_files_as_skipped(tmp_path: Path) -> None:
    path, _ = a_file()
    sink = tmp_path / "sink.jsonl"
    with (
        registered("sink", SinkTracker),
        trackhook.start_run("skip", config=sink_config(sink, "sink")) as run,
    ):
        trackhook.track_this(checkpoint=trackhook.File(path), loss=0.5)
    (tracker,) = read_run_log(run.run_log_path)[formats.TRACKERS]
    delivery = tracker[formats.TRACKER_DELIVERY]
    assert (delivery["delivered"], delivery["skipped"], delivery["undelivered"]) == (1, 1, 0)


def test_a_refused_call_never_removes_content_another_thread_tracked_meanwhile() -> None:
    path, content = a_file()
    first_held, other_tracked = threading.Event(), threading.Event()
    refused: list[trackhook.InvalidValueError] = []

    class ImageThatWaits:
        """Read as an image after the call's file is held: says so, waits, and is no image."""

        @property
        def __array_interface__(self) -> object:
            first_held.set()
            other_tracked.wait(30)
            raise AttributeError("no array after all")

    with recording() as recorder, trackhook.start_run("race", config=recording_config()) as run:

        def refused_call() -> None:
            try:
                run.track(
                    1, {"first": trackhook.File(path), "bad": trackhook.Image(ImageThatWaits())}
                )
            except trackhook.InvalidValueError as error:
                refused.append(error)

        thread = threading.Thread(target=refused_call)
        thread.start()
        assert first_held.wait(30)
        run.track(2, {"second": trackhook.File(path)})  # the same content, held meanwhile
        other_tracked.set()
        thread.join(30)
    assert [error.key for error in refused] == ["bad"]
    assert recorder.files() == {("second", 2): content}


class ImagesOnlyTracker(RecordingTracker):
    limits = trackhook.TrackerLimits(file_kinds=frozenset({"image"}))


def test_a_tracker_taking_images_only_gets_them_and_counts_the_other_files_skipped() -> None:
    path, _ = a_file()
    Path("sample.png").write_bytes(tiny_png())
    tracker = ImagesOnlyTracker()
    with (
        recording(tracker),
        trackhook.start_run("images-only", config=recording_config()) as run,
    ):
        trackhook.track_this(
            checkpoint=trackhook.File(path), sample=trackhook.Image("sample.png"), loss=0.5
        )
    assert tracker.files() == {("sample", 0): tiny_png()}
    (report,) = read_run_log(run.run_log_path)[formats.TRACKERS]
    delivery = report[formats.TRACKER_DELIVERY]
    assert (delivery["delivered"], delivery["skipped"], delivery["undelivered"]) == (2, 1, 0)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Path("missing.pt"), "No such file"),
        (lambda: Path("."), "not a file"),
    ],
    ids=["missing", "directory"],
)
def test_a_path_that_is_not_a_readable_file_is_refused_naming_key_and_path(
    make: Any, reason: str
) -> None:
    path = make()
    with recording() as recorder, trackhook.start_run("bad", config=recording_config()) as run:
        with pytest.raises(trackhook.InvalidValueError) as raised:
            trackhook.track_this(loss=0.5, checkpoint=trackhook.File(path))
    assert raised.value.key == "checkpoint"
    assert repr(str(path)) in str(raised.value)
    assert reason in str(raised.value)
    assert run.user_defined_metrics == {}
    assert recorder.metric_records() == []


def test_a_refused_call_holds_none_of_its_files() -> None:
    good, _ = a_file()
    with recording(), trackhook.start_run("none-held", config=recording_config()) as run:
        with pytest.raises(trackhook.InvalidValueError):
            trackhook.track_this(good=trackhook.File(good), bad=trackhook.File("missing.pt"))
    assert not list((STORE / "none-held" / "files").glob("*/*"))
    assert formats.FILES_HELD not in read_run_log(run.run_log_path)


def test_a_file_in_a_list_is_refused_with_the_way_to_track_several() -> None:
    path, _ = a_file()
    with recording(), trackhook.start_run("listed", config=recording_config()):
        with pytest.raises(trackhook.InvalidValueError, match="not in a list"):
            trackhook.track_this(samples=[trackhook.File(path)])


class RefusingFiles(RecordingTracker):
    @trackhook.hookimpl
    def trackhook_log_file(self, run: trackhook.RunInfo, file: trackhook.FileRecord) -> None:
        if file.size > 1000:
            raise trackhook.ValuesRejected(f"{file.name} is larger than 1000 bytes")
        super().trackhook_log_file(run, file)


def test_a_file_the_tracker_refuses_is_set_aside_and_the_next_ones_arrive() -> None:
    large, _ = a_file("large.bin", 5000)
    small, content = a_file("small.bin", 500)
    tracker = RefusingFiles()
    with recording(tracker), trackhook.start_run("refused", config=recording_config()) as run:
        trackhook.track_this(large=trackhook.File(large), small=trackhook.File(small))
    assert tracker.files() == {("small", 0): content}
    delivery = read_run_log(run.run_log_path)[formats.TRACKERS][0][formats.TRACKER_DELIVERY]
    assert delivery["rejected"] == 1
    assert delivery["rejected_keys"] == ["large"]
    assert delivery["undelivered"] == 0


def test_an_outage_then_recovery_delivers_each_file_exactly_once(tmp_path: Path) -> None:
    files = [a_file(f"ckpt-{step}.pt", 10_000) for step in range(5)]
    sink = tmp_path / "sink.jsonl"
    config = sink_config(sink, fail_first=7)
    with registered("file-sink", FileSinkTracker), trackhook.start_run("outage", config=config):
        for step, (path, _) in enumerate(files):
            trackhook.track_this(step=step, checkpoint=trackhook.File(path), loss=step / 10)
    received = files_of(sink)
    assert Counter(line["step"] for line in received) == Counter(range(5))
    assert [line["sha256"] for line in received] == [sha256(content) for _, content in files]


def test_sync_delivers_files_that_waited_out_an_outage_once(tmp_path: Path) -> None:
    path, content = a_file()
    config = sink_config(tmp_path / "down.jsonl", fail_first=1_000_000)
    config["delivery"]["flush_timeout"] = 0.5
    with registered("file-sink", FileSinkTracker), trackhook.start_run("later", config=config):
        trackhook.track_this(checkpoint=trackhook.File(path))
    path.unlink()
    sink = tmp_path / "up.jsonl"
    with registered("file-sink", FileSinkTracker):
        (result,) = sync_runs(["later"], sink_config(sink))
        (again,) = sync_runs(["later"], sink_config(sink))
    assert (result.delivered, again.delivered) == ({"file-sink": 1}, {"file-sink": 0})
    (line,) = files_of(sink)
    assert line["sha256"] == line["recorded_sha256"] == sha256(content)


OWNER_THAT_DIES = """
import os, sys
sys.path.insert(0, {tests!r})
import trackhook
from trackhook.registry import registered
from sink import FileSinkTracker

config = {{"experiment_tracker": {{"type": "file-sink", "config": {{"path": "down.jsonl",
          "fail_first": 1000000}}}}, "delivery": {{"interval": 0.01, "max_backoff": 3600}}}}
with registered("file-sink", FileSinkTracker), trackhook.start_run("died", config=config) as run:
    trackhook.track_this(step=3, checkpoint=trackhook.File("epoch-3.pt"), loss=0.5)
    run.flush()
    os.kill(os.getpid(), 9)
"""

SYNC = """
import sys
sys.path.insert(0, {tests!r})
from trackhook.cli import main
from trackhook.registry import registered
from sink import FileSinkTracker

with registered("file-sink", FileSinkTracker):
    sys.exit(main(["sync", "died", "--config", "sync.yaml"]))
"""


def test_sync_after_the_owner_died_delivers_a_file_whose_original_is_gone(tmp_path: Path) -> None:
    _, content = a_file("epoch-3.pt")
    owner = subprocess.run(
        [sys.executable, "-c", OWNER_THAT_DIES.format(tests=str(HERE))], cwd=tmp_path, timeout=120
    )
    assert owner.returncode == -signal.SIGKILL
    (tmp_path / "epoch-3.pt").unlink()
    config = {"experiment_tracker": {"type": "file-sink", "config": {"path": "up.jsonl"}}}
    (tmp_path / "sync.yaml").write_text(json.dumps(config))
    synced = subprocess.run(
        [sys.executable, "-c", SYNC.format(tests=str(HERE))], cwd=tmp_path, timeout=120
    )
    assert synced.returncode == 0
    (line,) = files_of(tmp_path / "up.jsonl")
    assert (line["key"], line["step"], line["name"]) == ("checkpoint", 3, "epoch-3.pt")
    assert line["sha256"] == sha256(content)
    assert [r["status"] for r in read_sink(tmp_path / "up.jsonl") if "closed" in r] == ["FAIL"]
    log = read_run_log(STORE / "died.json")
    assert log["status"] == "FAIL"
    assert log[formats.METRICS]["checkpoint"]["3"]["sha256"] == sha256(content)


def test_a_planted_spool_line_pointing_outside_the_store_reaches_no_tracker() -> None:
    secret = Path("secret.txt")
    secret.write_text("not yours")
    folder = STORE / "planted" / "spool"
    folder.mkdir(parents=True)
    record = {
        "file": "../secret.txt",
        "name": "secret.txt",
        "kind": "file",
        "sha256": "0" * 64,
        "size": 9,
    }
    line = {"t": 1.7e9, "s": 0, "v": {"leak": record}, "f": ["leak"]}
    (folder / "host-1-abcd.v3.jsonl").write_text(json.dumps(line) + "\n")
    with recording() as recorder:
        sync_runs(["planted"], recording_config())
    assert recorder.file_records() == []
    assert recorder.params() == {}


def test_plot_draws_the_metrics_and_never_a_files_size() -> None:
    from trackhook.cli._runlogs import find_run

    path, _ = a_file()
    with recording(), trackhook.start_run("plotted", config=recording_config()):
        for step in range(3):
            trackhook.track_this(step=step, loss=0.5, eval={"checkpoint": trackhook.File(path)})
    assert list(find_run(RunStore(STORE), "plotted").curves()) == ["loss"]


def test_trackhook_show_lists_files_and_the_bytes_the_run_holds() -> None:
    path, content = a_file()
    with recording(), trackhook.start_run("shown", config=recording_config()):
        trackhook.track_this(step=5, checkpoint=trackhook.File(path), loss=0.5)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["show", "shown", "--plain"]) == 0
    shown = out.getvalue()
    assert "Files" in shown
    assert "checkpoint" in shown
    assert path.name in shown
    assert f"shown/files/{sha256(content)}/{path.name}" in shown
    assert "files held: 1 (100.0 kB) in shown/files" in shown


def test_a_joined_child_process_holds_its_files_in_the_owners_store(tmp_path: Path) -> None:
    _, content = a_file("child.bin")
    child = "import trackhook; trackhook.track_this(step=1, made=trackhook.File('child.bin'))"
    with recording() as recorder, trackhook.start_run("joined", config=recording_config()) as run:
        env = {**os.environ, **run.child_environment()}
        subprocess.run([sys.executable, "-c", child], check=True, cwd=tmp_path, env=env)
    assert recorder.files() == {("made", 1): content}
    assert RunStore(STORE).spool_files("joined")


def test_a_store_that_cannot_hold_files_warns_and_tracks_the_calls_other_values() -> None:
    path, _ = a_file()
    with recording() as recorder, trackhook.start_run("no-room", config=recording_config()) as run:
        (STORE / "no-room" / "files").write_text("a file where the folder belongs")
        with pytest.warns(trackhook.TrackhookWarning, match="could not hold the files"):
            trackhook.track_this(step=1, checkpoint=trackhook.File(path), loss=0.5)
    assert recorder.file_records() == []
    assert recorder.metrics("loss") == {1: 0.5}
    assert run.user_defined_metrics == {"loss": {"1": 0.5}}


REFLINK_DIR = os.environ.get("TRACKHOOK_TEST_REFLINK_DIR")


@pytest.mark.skipif(
    not REFLINK_DIR, reason="set TRACKHOOK_TEST_REFLINK_DIR to a folder on Btrfs or XFS"
)
def test_on_a_file_system_with_reflinks_a_file_is_held_without_copying_its_blocks() -> None:
    assert REFLINK_DIR is not None
    folder = Path(REFLINK_DIR) / f"reflink-{os.getpid()}"
    folder.mkdir()
    path, content = a_file(str(folder / "big.bin"), 64 << 20)
    os.sync()
    free_before = shutil.disk_usage(folder).free
    config = {**recording_config(), "run_log_store": str(folder / "store")}
    with recording() as recorder, trackhook.start_run("reflinked", config=config):
        trackhook.track_this(checkpoint=trackhook.File(path))
        os.sync()
        taken = free_before - shutil.disk_usage(folder).free
        with open(path, "r+b") as file:  # in place: the held blocks must not change with it
            file.write(b"\0" * (1 << 20))
    assert taken < 8 << 20, f"holding 64 MB took {taken} bytes: the blocks were copied"
    assert recorder.files() == {("checkpoint", 0): content}
    shutil.rmtree(folder)
