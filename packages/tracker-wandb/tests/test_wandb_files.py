"""Files and images in real offline W&B runs, read back from the run's folder and transaction log.

The hook is called as the delivery thread calls it, over a file standing for the run store's copy;
the last test goes through ``track_this``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trackhook
from trackhook import RunInfo, TrackhookWarning
from trackhook.testing import file_record, noise_png, rgb_pixels
from trackhook_wandb import STEP_METRIC, WandbTracker

Make = Callable[..., WandbTracker]
Read = Callable[..., Any]  # the read_run fixture: returns a WandbRunFile of conftest.py


def _png(path: Path, seed: int = 0) -> Path:
    return noise_png(path, 20, 30, seed)


def _media_of(logged: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """``(trackhook step, media fields)`` of the media ``key`` in history order: W&B writes a
    media value as nested items (``key._type``, ``key.path``, ...)."""
    prefix = f"{key}."
    return [
        (row[STEP_METRIC], {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)})
        for row in logged.history
        if f"{prefix}_type" in row
    ]


def _files_of(logged: Any) -> Path:
    """The ``files`` folder of the offline run whose transaction log was read."""
    return Path(logged.path).parent / "files"


@pytest.fixture
def held(tmp_path: Path) -> Path:
    """The folder standing for the run store, where the core holds the tracked content."""
    folder = tmp_path / "held"
    folder.mkdir()
    return folder


def test_an_image_is_media_in_the_history_row_of_its_step(
    make_tracker: Make, read_run: Read, run_id: str, held: Path
) -> None:
    tracker, run = make_tracker(), RunInfo(run_id, "files")
    for step in (3, 1):  # a lower step after a higher one is kept too
        png = _png(held / f"sample-{step}.png", seed=step)
        tracker.trackhook_log_file(run, file_record(png, "eval/sample", step, "image"))
    tracker.trackhook_close_run(run, "SUCCESS")
    logged = read_run(run)
    images = _media_of(logged, "eval/sample")
    assert [step for step, _ in images] == [3, 1]
    for step, media in images:
        assert media["_type"] == "image-file"
        stored = _files_of(logged) / media["path"]
        assert (rgb_pixels(stored) == rgb_pixels(held / f"sample-{step}.png")).all()


def test_a_file_is_the_run_file_key_step_name(
    make_tracker: Make, read_run: Read, run_id: str, held: Path
) -> None:
    tracker, run = make_tracker(), RunInfo(run_id, "files")
    content = b"\x00weights\xff" * 1000
    (held / "held-copy").write_bytes(content)
    record = file_record(held / "held-copy", "checkpoint", 5, "file", name="epoch-5.pt")
    tracker.trackhook_log_file(run, record)
    tracker.trackhook_log_file(run, record)  # offered again after a failure: one file
    tracker.trackhook_close_run(run, "SUCCESS")
    stored = _files_of(read_run(run)) / "checkpoint" / "step_5"
    assert [path.name for path in stored.iterdir()] == ["epoch-5.pt"]
    assert (stored / "epoch-5.pt").read_bytes() == content
    assert not (stored / "epoch-5.pt").is_symlink(), "a copy: the run store's may go first"


def test_a_key_that_is_no_relative_path_stays_inside_the_run_files(
    make_tracker: Make, read_run: Read, run_id: str, held: Path
) -> None:
    tracker, run = make_tracker(), RunInfo(run_id, "files")
    (held / "x.txt").write_text("x")
    tracker.trackhook_log_file(run, file_record(held / "x.txt", "../../escape", 0, "file"))
    tracker.trackhook_close_run(run, "SUCCESS")
    files = _files_of(read_run(run))
    (stored,) = [path for path in files.rglob("x.txt")]
    folder, *rest = stored.relative_to(files).parts
    assert rest == ["step_0", "x.txt"]
    assert folder.startswith("___.._escape_"), "one name, by the core's renaming rule"


def test_without_pillow_an_image_is_kept_as_a_run_file_and_the_user_warned(
    make_tracker: Make, read_run: Read, run_id: str, held: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, run = make_tracker(), RunInfo(run_id, "files")
    record = file_record(_png(held / "plot.png"), "plot", 0, "image")
    tracker.trackhook_open_run(run)
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if pillow were not installed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (0, 1):
            record.step = step
            tracker.trackhook_log_file(run, record)
    monkeypatch.undo()
    tracker.trackhook_close_run(run, "SUCCESS")
    warned = [w for w in caught if issubclass(w.category, TrackhookWarning)]
    assert len(warned) == 1
    assert "trackhook-wandb[images]" in str(warned[0].message)
    logged = read_run(run)
    assert (_files_of(logged) / "plot" / "step_1" / "plot.png").read_bytes() == (
        held / "plot.png"
    ).read_bytes()
    assert _media_of(logged, "plot") == []


def test_files_and_images_tracked_with_track_this_land_in_the_wandb_run(
    tmp_path: Path, read_run: Read, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "epoch-5.pt"
    checkpoint.write_bytes(b"weights of epoch 5")
    pixels = np.random.default_rng(5).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    config = {
        "experiment_tracker": {"type": "wandb", "config": {"mode": "offline", "dir": str(tmp_path)}}
    }
    with trackhook.start_run(run_id=run_id, tag="files", config=config):
        trackhook.track_this(step=2, loss=0.5)
        trackhook.track_this(
            step=5, checkpoint=trackhook.File(checkpoint), eval={"grid": trackhook.Image(pixels)}
        )
        checkpoint.write_bytes(b"overwritten after tracking")
    logged = read_run(run_id)
    files = _files_of(logged)
    assert (files / "checkpoint" / "step_5" / "epoch-5.pt").read_bytes() == b"weights of epoch 5"
    ((step, media),) = _media_of(logged, "eval.grid")
    assert step == 5
    assert (rgb_pixels(files / media["path"]) == pixels).all()
    assert logged.values_of("loss") == [(2, 0.5)]
    assert all(STEP_METRIC in row for row in logged.history)
