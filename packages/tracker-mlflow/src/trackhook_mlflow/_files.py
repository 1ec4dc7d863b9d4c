"""Files and images of a run as MLflow artifacts (``trackhook_log_file``).

- **an image** goes through ``MlflowClient.log_image(key=..., step=...)``, MLflow's own API for
  images at a step: MLflow stores it as ``images/<key>+step+<s>+timestamp+<ms>+<uuid>.png`` with a
  small ``.webp`` preview beside it and tags the run ``mlflow.loggedImages``, and its UI shows the
  key with a step slider. MLflow before 3.11 writes a ``/`` of the key as ``#`` (and ``%`` for
  ``+``): an upload to a server that proxies artifacts then cuts the name at the ``#`` (image and
  preview both land in ``images/<first part>``, overwriting each other), and
  ``download_artifacts`` cannot read such a name back from any store. With those releases the
  adapter gives ``log_image`` the key with ``.`` for ``/`` (``eval/confusion`` is shown as
  ``eval.confusion``, as the core flattens nested dicts). ``log_image`` takes a PIL image (and
  imports numpy), so images need pillow and numpy: the extra ``trackhook-mlflow[images]``.
  Without them an image is stored as a file (below), and the user is warned once: delivered,
  without the slider, rather than blocking the run's later values behind a retry that cannot
  succeed until something is installed.
- **a file** is the artifact ``<key>/step_<s>/<name>``. Uploading it again writes the same path,
  so a file offered again after a failure is never stored twice.
- ``log_image`` names each upload with a fresh uuid, so an image offered again after a failure
  could be stored twice. An image whose upload failed in this process is therefore looked for in
  the run's ``images/`` folder before it is offered again (by its key, step and tracking time,
  which MLflow writes into the name); found complete (the image and its preview), it is not
  uploaded again. A process that dies in the middle of an upload leaves no such memory: the
  ``trackhook sync`` that delivers the image may then store a second copy at the same step.

MLflow and pillow are imported inside the functions, on the delivery thread: importing this module
(with the tracker) costs nothing.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from trackhook import FileRecord, TrackerLimits, ValuesRejected
from trackhook.held import stored_file_path
from trackhook.images import refused_unless_pillow_reads
from trackhook.optional import OptionalLibraries

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["IMAGE_KEY_RULE", "FileLogger"]

IMAGE_KEY_RULE = TrackerLimits(key_chars=r"[a-zA-Z0-9_\-./ ]", max_key_length=250, path_keys=True)
"""What ``log_image`` accepts as a key (ASCII only, unlike metric keys): a key outside it is
renamed by the core's rule (``précision`` → ``pr_cision_<8 hex digits>``)."""

# MLflow's image file names: <key with "/" as "~" (older MLflow: "#")>, then step, timestamp and
# a uuid, separated by "+" (older MLflow: "%"); the preview adds "+compressed" and is a .webp.
_IMAGE_NAME = re.compile(
    r"(?P<key>.*)(?P<sep>[+%])step(?P=sep)(?P<step>\d+)(?P=sep)timestamp(?P=sep)(?P<ms>\d+)"
    r"(?P=sep)(?P<uuid>[^+%]+?)(?P<preview>(?P=sep)compressed)?\.(?:png|webp)"
)
_IMAGES_FOLDER = "images"
_SLASH_KEPT_SINCE = (3, 11)
"""The first MLflow release whose ``log_image`` names a key's ``/`` ``~``, not ``#``."""
_IMAGES_EXTRA = "pip install 'trackhook-mlflow[images]'"


class FileLogger:
    """Stores the files and images of one tracker's runs; remembers images whose upload failed."""

    def __init__(self) -> None:
        self._failed_images: set[tuple[str, str, int, int]] = set()
        self._image_libraries = OptionalLibraries(
            "numpy",  # log_image imports it, whatever the image
            "PIL.Image",
            missing=(
                "MLflow's log_image needs pillow and numpy, which are not installed: images are "
                "stored as plain artifacts <key>/step_<s>/<name>, without MLflow's step slider; "
                f"to show them at their step, {_IMAGES_EXTRA}"
            ),
        )

    def log(self, client: MlflowClient, mlflow_run_id: str, file: FileRecord) -> None:
        """Store ``file`` in the MLflow run ``mlflow_run_id``: an image at its step, else a file."""
        if file.kind == "image" and self._image_libraries.available():
            self._log_image(client, mlflow_run_id, file)
        else:
            _log_artifact_file(client, mlflow_run_id, file)

    def _log_image(self, client: MlflowClient, mlflow_run_id: str, file: FileRecord) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES
        from PIL.Image import open as open_image

        key = _image_key(file.key)
        millis = int(file.timestamp * 1000)
        identity = (mlflow_run_id, key, file.step, millis)
        if identity in self._failed_images and _image_stored(client, mlflow_run_id, identity):
            client.set_tag(mlflow_run_id, MLFLOW_LOGGED_IMAGES, True, synchronous=True)
            self._failed_images.discard(identity)
            return
        try:
            with refused_unless_pillow_reads(file), open_image(file.path) as image:
                client.log_image(
                    mlflow_run_id,
                    image,
                    key=key,
                    step=file.step,
                    timestamp=millis,
                    synchronous=True,
                )
        except BaseException as error:
            if not isinstance(error, ValuesRejected):  # an outage: the upload may have stored it
                self._failed_images.add(identity)
            raise
        self._failed_images.discard(identity)


def _image_key(key: str) -> str:
    """The key ``log_image`` is given for the tracked ``key`` (see the module's docstring)."""
    storable = IMAGE_KEY_RULE.storable_key(key)
    return storable if _log_image_keeps_slashes() else storable.replace("/", ".")


@functools.cache
def _log_image_keeps_slashes() -> bool:
    """Whether the installed MLflow's ``log_image`` names a key's ``/`` safely (3.11 and later)."""
    import mlflow

    major, minor = (int(part) for part in mlflow.__version__.split(".")[:2])
    return (major, minor) >= _SLASH_KEPT_SINCE


def _log_artifact_file(client: MlflowClient, mlflow_run_id: str, file: FileRecord) -> None:
    """Upload ``file`` as the artifact ``<key>/step_<s>/<name>`` (the same path on a retry).

    MLflow names an uploaded file after the local one, and the run store's copy may have another
    name: it is uploaded through a link of the right name in a temporary folder (a copy where
    links are not allowed), never renamed or changed itself.
    """
    folder, _, name = stored_file_path(file).rpartition("/")  # the key: a normal path (limits)
    if Path(file.path).name == name:  # how the core holds content: <sha256>/<name>
        client.log_artifact(mlflow_run_id, str(file.path), folder)
        return
    with tempfile.TemporaryDirectory(prefix="trackhook-mlflow-") as staging:
        staged = Path(staging, name)
        try:
            os.symlink(Path(file.path).absolute(), staged)
        except OSError:  # Windows without the privilege to link: copy
            shutil.copyfile(file.path, staged)
        client.log_artifact(mlflow_run_id, str(staged), folder)


def _image_stored(
    client: MlflowClient, mlflow_run_id: str, identity: tuple[str, str, int, int]
) -> bool:
    """Whether ``log_image`` already stored the image ``identity`` whole (image and preview)."""
    _, key, step, millis = identity
    parts: dict[str, set[bool]] = {}
    for info in client.list_artifacts(mlflow_run_id, _IMAGES_FOLDER):
        match = _IMAGE_NAME.fullmatch(info.path.rsplit("/", 1)[-1])
        if match is None:
            continue
        same = (re.sub("[~#]", "/", match["key"]), int(match["step"]), int(match["ms"]))
        if same == (key, step, millis):
            parts.setdefault(match["uuid"], set()).add(match["preview"] is not None)
    return any(found == {True, False} for found in parts.values())
