"""``trackhook.Image``: a PNG or JPEG path held as it is; a PIL image, a numpy array or a
matplotlib figure encoded as a PNG when ``track_this`` is called; bad input refused naming the
key; pillow, numpy and matplotlib needed only by the images that use them.

The tests that need numpy, pillow or matplotlib are skipped where they are missing; the core's
``test`` extra installs them (``nox -s tests-core`` runs every test here)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook import formats
from trackhook.runlog import read_run_log
from trackhook.testing import recording

from .conftest import recording_config

pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"


def tracked_image(data: Any, run_id: str = "images") -> tuple[trackhook.FileRecord, bytes]:
    """Track ``Image(data)`` at step 1; what the tracker received."""
    with recording() as recorder, trackhook.start_run(run_id, config=recording_config()):
        trackhook.track_this(step=1, sample=trackhook.Image(data))
    (record,) = recorder.file_records()
    return record, recorder.files()[("sample", 1)]


def pixels_of(png: bytes) -> Any:
    numpy = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    return numpy.asarray(pil.open(io.BytesIO(png)))


def test_a_png_path_is_held_as_it_is_without_any_image_library(tmp_path: Path) -> None:
    path = tmp_path / "confusion.png"
    path.write_bytes(PNG + b"the rest of a png")
    record, content = tracked_image(path)
    assert content == path.read_bytes()
    assert (record.kind, record.name) == ("image", "confusion.png")


def test_a_jpeg_path_stays_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "sample.jpg"
    path.write_bytes(JPEG + b"\xe0 the rest of a jpeg")
    record, content = tracked_image(str(path))
    assert content == path.read_bytes()
    assert record.name == "sample.jpg"


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"GIF89a...", "neither a PNG nor a JPEG"), (None, "cannot be read")],
    ids=["not-png-or-jpeg", "missing"],
)
def test_a_path_that_is_no_png_or_jpeg_is_refused_naming_key_and_path(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "sample.gif"
    if content is not None:
        path.write_bytes(content)
    with recording(), trackhook.start_run("bad-path", config=recording_config()) as run:
        with pytest.raises(trackhook.InvalidValueError, match=reason) as raised:
            trackhook.track_this(sample=trackhook.Image(path), loss=0.5)
    assert raised.value.key == "sample"
    assert str(path) in str(raised.value)
    assert run.user_defined_metrics == {}


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 3), (4, 6, 4)], ids=["HxW", "HxWx3", "HxWx4"])
def test_a_uint8_array_of_each_shape_becomes_a_png_of_its_pixels(shape: tuple[int, ...]) -> None:
    numpy = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    array = numpy.arange(numpy.prod(shape), dtype="uint8").reshape(shape)
    record, content = tracked_image(array)
    assert content.startswith(PNG)
    assert (record.kind, record.name) == ("image", "sample.png")
    assert numpy.array_equal(pixels_of(content), array)


def test_a_float_array_in_0_1_becomes_a_png_scaled_to_0_255() -> None:
    numpy = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    array = numpy.array([[0.0, 0.5], [1.0, 0.25]])
    _, content = tracked_image(array)
    assert pixels_of(content).tolist() == [[0, 128], [255, 64]]


def test_changing_the_array_after_track_this_changes_nothing() -> None:
    numpy = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    array = numpy.zeros((3, 3), dtype="uint8")
    with recording() as recorder, trackhook.start_run("mutated", config=recording_config()):
        trackhook.track_this(sample=trackhook.Image(array))
        array[:] = 255
    assert pixels_of(recorder.files()[("sample", 0)]).max() == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda numpy: numpy.zeros((4, 6, 2), dtype="uint8"), "HxW, HxWx3 or HxWx4"),
        (lambda numpy: numpy.zeros((0, 6), dtype="uint8"), "not empty"),
        (lambda numpy: numpy.zeros((4,), dtype="uint8"), "HxW, HxWx3 or HxWx4"),
        (lambda numpy: numpy.zeros((4, 6), dtype="int32"), "must be uint8"),
        (lambda numpy: numpy.full((4, 6), 2.0), r"in \[0, 1\]"),
        (lambda numpy: numpy.full((4, 6), numpy.nan), r"in \[0, 1\]"),
    ],
    ids=["two-channels", "empty", "one-dimension", "int32", "float-above-1", "nan"],
)
def test_an_array_of_the_wrong_shape_type_or_range_is_refused_naming_the_key(
    make: Any, reason: str
) -> None:
    numpy = pytest.importorskip("numpy")
    with recording(), trackhook.start_run("bad-array", config=recording_config()) as run:
        with pytest.raises(trackhook.InvalidValueError, match=reason) as raised:
            trackhook.track_this(step=2, eval={"sample": trackhook.Image(make(numpy))})
    assert raised.value.key == "eval.sample"
    assert run.user_defined_metrics == {}


def test_something_that_is_no_image_is_refused_saying_what_an_image_takes() -> None:
    with recording(), trackhook.start_run("no-image", config=recording_config()):
        with pytest.raises(trackhook.InvalidValueError, match="an Image takes a PNG or JPEG path"):
            trackhook.track_this(sample=trackhook.Image(42))


def test_a_pil_image_becomes_a_png() -> None:
    pil = pytest.importorskip("PIL.Image")
    image = pil.new("RGB", (5, 3), color=(255, 0, 0))
    _, content = tracked_image(image)
    assert pixels_of(content)[0, 0].tolist() == [255, 0, 0]


def test_a_pil_image_in_a_mode_png_cannot_hold_becomes_an_rgba_png() -> None:
    pil = pytest.importorskip("PIL.Image")
    _, content = tracked_image(pil.new("CMYK", (2, 2)))
    assert pixels_of(content).shape == (2, 2, 4)


def test_a_matplotlib_figure_becomes_a_png() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=50)
    figure.add_subplot().plot([0, 1], [1, 0])
    record, content = tracked_image(figure)
    assert content.startswith(PNG)
    assert pixels_of(content).shape[:2] == (50, 100)
    assert record.size == len(content)


def test_the_run_log_records_an_image_with_kind_image() -> None:
    numpy = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    with recording(), trackhook.start_run("logged-image", config=recording_config()) as run:
        trackhook.track_this(step=3, sample=trackhook.Image(numpy.zeros((2, 2), dtype="uint8")))
    recorded = read_run_log(run.run_log_path)[formats.METRICS]["sample"]["3"]
    assert (recorded["kind"], recorded["name"]) == ("image", "sample.png")
    assert recorded["file"].startswith("logged-image/files/")


WITHOUT_PILLOW = """
import sys
sys.modules["PIL"] = None  # as if pillow were not installed: importing it raises ImportError
import numpy, trackhook
config = {"experiment_tracker": {"type": "do-nothing"}}
with trackhook.start_run("no-pillow", config=config):
    try:
        trackhook.track_this(sample=trackhook.Image(numpy.zeros((2, 2), dtype="uint8")))
    except trackhook.InvalidValueError as error:
        print(error)
"""


def test_an_array_without_pillow_is_refused_naming_the_extra_to_install(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    shown = subprocess.run(
        [sys.executable, "-c", WITHOUT_PILLOW],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "cannot track 'sample'" in shown
    assert "pip install 'trackhook[images]'" in shown


ONLY_WHAT_IS_NEEDED = """
import sys
from pathlib import Path
import trackhook
Path("a.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n...")
Path("a.bin").write_bytes(b"...")
config = {"experiment_tracker": {"type": "do-nothing"}}
with trackhook.start_run("light", config=config):
    trackhook.track_this(image=trackhook.Image("a.png"), file=trackhook.File("a.bin"))
print(sorted(name for name in ("PIL", "numpy", "matplotlib") if name in sys.modules))
"""


def test_files_and_image_paths_import_no_pillow_numpy_or_matplotlib(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-c", ONLY_WHAT_IS_NEEDED],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert shown.strip() == "[]"
