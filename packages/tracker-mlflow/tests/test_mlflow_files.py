"""``trackhook_log_file`` called as the delivery thread calls it, on real MLflow stores.

Each test runs against a tracking server whose clients write artifacts into its folder, a server
that proxies artifacts (``mlflow-artifacts:/``) and a sqlite store; what MLflow stored is read back
with ``MlflowClient``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import trackhook
from trackhook import RunInfo, TrackhookWarning, ValuesRejected
from trackhook.testing import file_record, noise_png, rgb_pixels
from trackhook_mlflow import MlflowConfig, MlflowTracker
from trackhook_mlflow._files import IMAGE_KEY_RULE


def _png(path: Path, seed: int = 0) -> Path:
    return noise_png(path, 24, 32, seed)


def _open(tracking_uri: str, names: Any) -> tuple[MlflowTracker, RunInfo]:
    """A tracker whose first hook of the run will be a file hook (as in ``trackhook sync``)."""
    return MlflowTracker(MlflowConfig(tracking_uri=tracking_uri)), RunInfo(*names, time.time())


def _mlflow_run_id(tracker: MlflowTracker, run: RunInfo) -> str:
    return tracker._runs[run.run_id].mlflow_run_id


def _images(client: MlflowClient, mlflow_run_id: str) -> list[str]:
    return sorted(info.path for info in client.list_artifacts(mlflow_run_id, "images"))


def _mlflow_release() -> tuple[int, int]:
    major, minor = (int(part) for part in mlflow.__version__.split(".")[:2])
    return major, minor


def _newest_form(image_path: str) -> str:
    """An image's stored path as the newest MLflow names it: MLflow before 3.11 separates the key,
    step, timestamp and uuid with "%" and writes a "/" of the key as "#" (newer: "+" and "~")."""
    return image_path.replace("%", "+").replace("#", "~")


@pytest.fixture
def held(tmp_path: Path) -> Path:
    """The folder standing for the run store, where the core holds the tracked content."""
    folder = tmp_path / "held"
    folder.mkdir()
    return folder


def test_a_file_is_the_artifact_key_step_name(
    artifact_tracking_uri: str, names: Any, held: Path, tmp_path: Path
) -> None:
    tracker, run = _open(artifact_tracking_uri, names)
    content = b"\x00weights\xff" * 1000
    (held / "0a1b2c").write_bytes(content)
    tracker.trackhook_log_file(
        run, file_record(held / "0a1b2c", "checkpoint", 5, "file", name="epoch-5.pt")
    )
    client = MlflowClient(artifact_tracking_uri)
    mlflow_run_id = _mlflow_run_id(tracker, run)
    stored = client.download_artifacts(mlflow_run_id, "checkpoint/step_5/epoch-5.pt", tmp_path)
    assert Path(stored).read_bytes() == content
    assert (held / "0a1b2c").read_bytes() == content, "the held copy is never changed"


def test_a_file_offered_again_is_stored_once(
    artifact_tracking_uri: str, names: Any, held: Path
) -> None:
    tracker, run = _open(artifact_tracking_uri, names)
    record = file_record(_png(held / "plot.png"), "eval/plot", 2, "file")
    tracker.trackhook_log_file(run, record)
    tracker.trackhook_log_file(run, record)
    client = MlflowClient(artifact_tracking_uri)
    listed = client.list_artifacts(_mlflow_run_id(tracker, run), "eval/plot/step_2")
    assert [info.path for info in listed] == ["eval/plot/step_2/plot.png"]


def test_an_image_is_logged_at_its_step_for_the_step_slider(
    artifact_tracking_uri: str, names: Any, held: Path, tmp_path: Path
) -> None:
    tracker, run = _open(artifact_tracking_uri, names)
    for step in (3, 1):
        png = _png(held / f"confusion-{step}.png", seed=step)
        tracker.trackhook_log_file(run, file_record(png, "eval/confusion", step, "image"))
    client = MlflowClient(artifact_tracking_uri)
    mlflow_run_id = _mlflow_run_id(tracker, run)
    stored = _images(client, mlflow_run_id)
    # before MLflow 3.11, "/" is given to log_image as ".": MLflow's "#" for it breaks the name
    slash = "~" if _mlflow_release() >= (3, 11) else "."
    full = [path for path in stored if path.endswith(".png")]
    assert len(full) == 2
    assert len([path for path in stored if _newest_form(path).endswith("+compressed.webp")]) == 2
    for step in (3, 1):
        (path,) = [
            p
            for p in full
            if _newest_form(p).startswith(f"images/eval{slash}confusion+step+{step}+")
        ]
        downloaded = client.download_artifacts(mlflow_run_id, path, tmp_path)
        assert (rgb_pixels(Path(downloaded)) == rgb_pixels(held / f"confusion-{step}.png")).all()
    assert client.get_run(mlflow_run_id).data.tags["mlflow.loggedImages"] == "True"


def test_an_image_key_log_image_refuses_is_renamed_by_the_core_rule(
    sqlite_uri: str, names: Any, held: Path
) -> None:
    tracker, run = _open(sqlite_uri, names)
    tracker.trackhook_log_file(run, file_record(_png(held / "p.png"), "précision", 0, "image"))
    stored = _images(MlflowClient(sqlite_uri), _mlflow_run_id(tracker, run))
    renamed = IMAGE_KEY_RULE.storable_key("précision")
    assert renamed.startswith("pr_cision_")
    assert all(_newest_form(path).startswith(f"images/{renamed}+step+0+") for path in stored)


class _LosesTheLastResponse(MlflowClient):
    """A real client whose first ``set_tag`` fails after MLflow stored the image: the response
    to the last request of ``log_image`` was lost, so the delivery offers the image again."""

    failures = 1

    def set_tag(self, *args: Any, **kwargs: Any) -> None:
        super().set_tag(*args, **kwargs)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the connection dropped before the answer came")


def test_an_image_offered_again_after_a_failure_is_stored_once(
    artifact_tracking_uri: str, names: Any, held: Path
) -> None:
    tracker, run = _open(artifact_tracking_uri, names)
    record = file_record(_png(held / "sample.png"), "samples", 7, "image")
    tracker.trackhook_open_run(run)
    state = tracker._runs[run.run_id]
    failing = _LosesTheLastResponse(artifact_tracking_uri)
    # the tracker's own store and artifact resolution (MLflow 3.5's client's fail when proxied)
    failing._tracking_client = state.client._tracking_client
    state.client = failing
    with pytest.raises(ConnectionError):
        tracker.trackhook_log_file(run, record)
    tracker.trackhook_log_file(run, record)
    stored = _images(MlflowClient(artifact_tracking_uri), state.mlflow_run_id)
    assert len(stored) == 2, stored  # one image and its preview


def test_a_file_pillow_cannot_read_as_an_image_is_rejected(
    sqlite_uri: str, names: Any, held: Path
) -> None:
    tracker, run = _open(sqlite_uri, names)
    (held / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not an image")
    with pytest.raises(ValuesRejected, match=r"broken\.png"):
        tracker.trackhook_log_file(run, file_record(held / "broken.png", "bad", 0, "image"))


def test_without_pillow_an_image_is_kept_as_a_file_and_the_user_warned(
    sqlite_uri: str, names: Any, held: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, run = _open(sqlite_uri, names)
    record = file_record(_png(held / "p.png"), "plot", 0, "image")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if pillow were not installed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (0, 1):
            record.step = step
            tracker.trackhook_log_file(run, record)
    warned = [w for w in caught if issubclass(w.category, TrackhookWarning)]
    assert len(warned) == 1
    assert "trackhook-mlflow[images]" in str(warned[0].message)
    client = MlflowClient(sqlite_uri)
    mlflow_run_id = _mlflow_run_id(tracker, run)
    assert [i.path for i in client.list_artifacts(mlflow_run_id, "plot/step_1")] == [
        "plot/step_1/p.png"
    ]
    assert _images(client, mlflow_run_id) == []


def test_files_and_images_tracked_with_track_this_land_in_the_mlflow_run(
    run_in_mlflow: Any, tracking_uri: str, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "epoch-5.pt"
    checkpoint.write_bytes(b"weights of epoch 5")
    pixels = np.random.default_rng(5).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)

    def body() -> None:
        trackhook.track_this(
            step=5, checkpoint=trackhook.File(checkpoint), eval={"grid": trackhook.Image(pixels)}
        )
        checkpoint.write_bytes(b"overwritten after tracking")

    _, mlflow_run = run_in_mlflow(body)
    client = MlflowClient(tracking_uri)
    mlflow_run_id = mlflow_run.info.run_id
    stored = client.download_artifacts(mlflow_run_id, "checkpoint/step_5/epoch-5.pt", tmp_path)
    assert Path(stored).read_bytes() == b"weights of epoch 5"
    (image,) = [path for path in _images(client, mlflow_run_id) if path.endswith(".png")]
    assert _newest_form(image).startswith("images/eval.grid+step+5+")
    assert (
        rgb_pixels(Path(client.download_artifacts(mlflow_run_id, image, tmp_path))) == pixels
    ).all()
