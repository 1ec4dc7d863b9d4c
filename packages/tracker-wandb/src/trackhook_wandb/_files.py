"""Files and images of a run in W&B (``trackhook_log_file``).

- **an image** is a ``wandb.Image`` in a history row of its own, ``{"trackhook/step": s, key:
  image}``, like a metric at that step (see the step rule of ``_mapping``): W&B copies it into the
  run's ``media/images/`` and shows it in the key's media panel. ``wandb.Image`` reads the file
  with pillow, which wandb does not install: the extra ``trackhook-wandb[images]``. Without
  pillow an image is kept as a file (below), and the user is warned once: delivered, without a
  media panel, rather than blocking the run's later values behind a retry that cannot succeed
  until something is installed.
- **a file** is a run file ``<key>/step_<s>/<name>`` (W&B's Files tab, and ``wandb sync`` of an
  offline run uploads it): copied into the run's folder and handed to ``run.save`` with
  ``policy="now"``. A copy rather than W&B's own symlink, because the run store's copy may be
  removed with the run log before an offline run is synced. A run file was chosen over an
  artifact: it lands where MLflow's tracker puts it, and needs no artifact name (W&B's allow only
  ``[\\w.-]``); version checkpoints as artifacts yourself through the client context where you want
  W&B's lineage. Writing the same path again on a retry stores it once.

``wandb`` and pillow are imported inside the functions, on the delivery thread.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from trackhook import FileRecord, TrackerLimits
from trackhook.held import stored_file_path
from trackhook.images import refused_unless_pillow_reads
from trackhook.optional import OptionalLibraries
from trackhook_wandb._mapping import STEP_METRIC

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["FileLogger"]

# The run file's folder is the key, as a relative path that stays inside the run's folder: W&B
# stores any key, so one that is not a normal path ("../x", "/abs", "a//b") is renamed by the
# core's rule into one plain name; so is one with glob characters, as run.save expands its argument
# as a pattern.
_FOLDER_RULE = TrackerLimits(key_chars=r"[^\\\x00:*?\[\]]", max_key_length=200, path_keys=True)


class FileLogger:
    """Stores the files and images of one tracker's runs."""

    def __init__(self) -> None:
        self._pillow = OptionalLibraries(
            "PIL.Image",
            missing=(
                "wandb.Image needs pillow, which is not installed: images are kept as run files "
                "<key>/step_<s>/<name>, without a media panel; to see them at their step, "
                "pip install 'trackhook-wandb[images]'"
            ),
        )

    def log(self, wandb_run: Run, file: FileRecord) -> None:
        """Store ``file`` in ``wandb_run``: an image in the row of its step, else a run file."""
        if wandb_run.settings.mode == "disabled":
            return  # W&B records nothing, and its run folder is a throwaway one
        if file.kind == "image" and self._pillow.available():
            _log_image(wandb_run, file)
        else:
            _save_run_file(wandb_run, file)


def _log_image(wandb_run: Run, file: FileRecord) -> None:
    """One history row holding the image, at the file's trackhook step."""
    import wandb

    with refused_unless_pillow_reads(file):
        image = wandb.Image(str(file.path))
    wandb_run.log({STEP_METRIC: file.step, file.key: image})


def _save_run_file(wandb_run: Run, file: FileRecord) -> None:
    """Copy the file into the run folder as ``<key>/step_<s>/<name>`` and save it with the run."""
    files = Path(wandb_run.dir)
    target = files / stored_file_path(file, _FOLDER_RULE)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file.path, target)
    wandb_run.save(str(target), base_path=str(files), policy="now")
