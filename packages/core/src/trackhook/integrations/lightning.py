"""``TrackhookLogger``: a Lightning logger that sends what a ``Trainer`` logs through trackhook.

::

    from lightning.pytorch import Trainer
    from trackhook.integrations.lightning import TrackhookLogger

    trainer = Trainer(logger=TrackhookLogger(tag="mnist"), max_epochs=3)
    trainer.fit(model, data)

The run opens when the fit starts (Lightning asks for the logger's ``experiment`` at setup) and
closes when Lightning finalizes the logger: ``SUCCESS`` at the end of ``fit``, ``FAIL`` when the
fit raised or was interrupted (``finalize("failed")``). Hyperparameters (``save_hyperparameters``)
are tracked at step 0 as parameters, numbers included; ``self.log`` values at Lightning's step.
Only the process that Lightning calls rank zero opens a run: a DDP fit opens one.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from trackhook.integrations._bridge import MissingFrameworkError, TrainingRun
from trackhook.run import Run

try:
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as error:
    raise MissingFrameworkError("lightning", "Lightning", "lightning", error) from error

__all__ = ["TrackhookLogger"]


class TrackhookLogger(Logger):  # type: ignore[misc]
    """A Lightning ``Logger`` whose run is a trackhook run: ``name`` is the tag, ``version`` the
    run_id, ``experiment`` the open ``trackhook.Run``.

    :param run_id: names the run; generated when none is given. The same run_id continues the
        run: pass ``trackhook.integrations.run_id_for(checkpoint_folder)`` to continue it when a
        fit resumes from its checkpoints.
    :param tag: names the experiment (MLflow) or project (W&B).
    :param config: the trackhook configuration, as for ``trackhook.start_run``.
    """

    def __init__(self, run_id: str | None = None, tag: str = "", *, config: Any = None) -> None:
        super().__init__()
        self._training = TrainingRun(run_id, tag, config, "Lightning")

    @property
    def name(self) -> str:
        return self._training.tag

    @property
    def version(self) -> str:
        return self._training.run_id

    @property
    @rank_zero_experiment  # type: ignore[untyped-decorator]
    def experiment(self) -> Run:
        """The open trackhook run (opened now if it is not); a stand-in on other ranks."""
        return self._training.open()

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Track the hyperparameters at step 0 as parameters, numbers included."""
        self._training.track_params(params)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Track ``metrics`` at Lightning's ``step`` (without one: the last step logged)."""
        self._training.track_metrics(step, metrics)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def save(self) -> None:
        """Hand what was tracked so far to the operating system, as Lightning saves a checkpoint."""
        if self._training.is_open:
            self._training.open().flush()

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        """Close the run: ``FAIL`` for Lightning's ``"failed"``, else ``SUCCESS``.

        Lightning finalizes after ``fit``, ``validate`` and ``test`` (``"success"``), when one of
        them raised (``"failed"``) and before a SLURM requeue (``"finished"``). Logging after
        that continues the same run.
        """
        self._training.close("FAIL" if status == "failed" else "SUCCESS")
