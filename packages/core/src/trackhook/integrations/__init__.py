"""trackhook inside the training frameworks: a logger or callback for each, in a module of its own.

- ``trackhook.integrations.lightning.TrackhookLogger``: a Lightning ``Logger``;
- ``trackhook.integrations.transformers.TrackhookCallback``: a transformers ``TrainerCallback``;
- ``trackhook.integrations.accelerate.TrackhookTracker``: an accelerate ``GeneralTracker``;
- ``trackhook.integrations.keras.TrackhookCallback``: a Keras 3 ``Callback``.

Each takes ``(run_id=None, tag="", *, config=None)`` as ``trackhook.start_run`` does, opens the
run when training starts and closes it when training ends. A module imports its framework when
it is imported, never before: ``import trackhook`` and ``import trackhook.integrations`` import
none of them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RUN_ID_FILE", "run_id_for"]

RUN_ID_FILE = ".trackhook-run-id"
"""The file in a checkpoint folder that keeps the run_id of the training writing there."""


def run_id_for(folder: str | os.PathLike[str]) -> str:
    """The run_id kept in ``folder``: generated and saved there the first time, read back after.

    Give it the folder a training checkpoints into, and a restarted training (a requeued job, a
    resumed fit) continues the same run::

        logger = TrackhookLogger(run_id_for("checkpoints"), tag="mnist")

    Safe when every process of a distributed job calls it at once: the first file written wins
    and every process reads that one. Delete the file (or the folder) to start a new run.
    """
    from trackhook.runid import check_run_id, generate_run_id

    path = Path(folder) / RUN_ID_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f"{RUN_ID_FILE}.{os.getpid()}.tmp")
        candidate.write_text(generate_run_id() + "\n", encoding="utf-8")
        try:
            os.link(candidate, path)  # atomic, and fails if another process was first
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return check_run_id(path.read_text(encoding="utf-8").strip(), source=str(path))
