"""Images as TensorBoard image summaries, read back with TensorBoard's own reader; files refused.

The hook is called as the delivery thread calls it, over a file standing for the run store's copy;
the last test goes through ``track_this``.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import trackhook
from trackhook import RunInfo, ValuesRejected
from trackhook.testing import file_record
from trackhook_tensorboard import TensorBoardConfig, TensorBoardTracker

Read = Callable[[Path], Any]  # the read fixture: returns a RunFolder of conftest.py


@pytest.fixture(autouse=True)
def _in_tmp_path(in_tmp_path: Path) -> None:
    """Every test runs in its own folder: ``runs/`` and ``.run_log_store/`` are relative."""


def _image(path: Path, size: tuple[int, int], image_format: str, mode: str = "RGB") -> Path:
    width, height = size
    pixels = np.random.default_rng(width).integers(0, 256, size=(height, width, len(mode)))
    Image.fromarray(pixels.astype(np.uint8).squeeze(), mode=mode).save(path, format=image_format)
    return path


def _tracker() -> TensorBoardTracker:
    return TensorBoardTracker(TensorBoardConfig(log_dir="runs"))


def test_an_image_is_an_image_summary_at_its_step(read: Read, run_id: str) -> None:
    tracker, run = _tracker(), RunInfo(run_id, "files")
    pngs = {step: _image(Path(f"sample-{step}.png"), (30 + step, 20), "PNG") for step in (3, 1)}
    for step, png in pngs.items():
        tracker.trackhook_log_file(run, file_record(png, "eval/sample", step, "image"))
    tracker.trackhook_close_run(run, "SUCCESS")
    stored = read(Path("runs", "files", run_id)).images
    assert stored == {
        "eval/sample": [(step, 30 + step, 20, png.read_bytes()) for step, png in pngs.items()]
    }


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_jpeg_is_written_as_tracked_with_the_size_of_its_header(
    read: Read, run_id: str, mode: str
) -> None:
    tracker, run = _tracker(), RunInfo(run_id, "files")
    jpeg = _image(Path("photo.jpg"), (41, 17), "JPEG", mode)
    tracker.trackhook_log_file(run, file_record(jpeg, "photo", 0, "image"))
    tracker.trackhook_close_run(run, "SUCCESS")
    assert read(Path("runs", "files", run_id)).images == {"photo": [(0, 41, 17, jpeg.read_bytes())]}


def test_an_image_neither_png_nor_jpeg_is_refused(run_id: str) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    Path("anim.gif").write_bytes(gif.getvalue())
    with pytest.raises(ValuesRejected, match="neither a PNG nor a JPEG"):
        _tracker().trackhook_log_file(
            RunInfo(run_id, "files"), file_record(Path("anim.gif"), "anim", 0, "image")
        )


def test_tracked_images_land_in_tensorboard_and_files_are_counted_skipped(
    read: Read, run_id: str
) -> None:
    Path("epoch-5.pt").write_bytes(b"weights of epoch 5")
    pixels = np.random.default_rng(5).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    config = {"experiment_tracker": {"type": "tensorboard", "config": {}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file TensorBoard has no place for is no failure
        with trackhook.start_run(run_id=run_id, tag="files", config=config):
            trackhook.track_this(
                step=5,
                loss=0.5,
                checkpoint=trackhook.File("epoch-5.pt"),
                eval={"grid": trackhook.Image(pixels)},
            )
    stored = read(Path("runs", "files", run_id))
    ((step, width, height, png),) = stored.images["eval.grid"]
    assert (step, width, height) == (5, 24, 16)
    with Image.open(io.BytesIO(png)) as image:
        assert (np.asarray(image) == pixels).all()
    assert stored.scalars == {"loss": [(5, 0.5)]}
    log = json.loads(Path(".run_log_store", f"{run_id}.json").read_text(encoding="utf-8"))
    delivery = log["experiment_trackers"][0]["delivery"]
    assert (delivery["delivered"], delivery["skipped"], delivery["rejected"]) == (2, 1, 0)
    assert log["user_defined_metrics"]["checkpoint"]["5"]["name"] == "epoch-5.pt"
