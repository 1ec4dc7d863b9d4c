"""``TrackhookTracker``: an accelerate ``GeneralTracker`` that sends ``accelerator.log`` through
trackhook.

::

    from accelerate import Accelerator
    from trackhook.integrations.accelerate import TrackhookTracker

    accelerator = Accelerator(log_with=TrackhookTracker(tag="finetune"))
    accelerator.init_trackers("finetune", config={"learning_rate": 1e-3, "epochs": 3})
    ...
    accelerator.log({"loss": loss.item()}, step=step)
    accelerator.end_training()

``init_trackers`` opens the run and tracks its ``config`` at step 0 as parameters (numbers
included); ``accelerator.log`` tracks at its ``step``; ``end_training`` closes the run as
``SUCCESS``. A script that raises before ``end_training`` closes it as ``FAIL`` when the
interpreter exits. Only the main process sends (accelerate's ``main_process_only``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackhook.integrations._bridge import MissingFrameworkError, TrainingRun
from trackhook.run import Run

try:
    from accelerate.tracking import GeneralTracker, on_main_process
except ImportError as error:
    raise MissingFrameworkError("accelerate", "accelerate", "accelerate", error) from error

__all__ = ["TrackhookTracker"]


class TrackhookTracker(GeneralTracker):  # type: ignore[misc]
    """A ``GeneralTracker`` whose run is a trackhook run; ``tracker`` is the open ``Run``.

    :param run_id: names the run; generated when none is given. The same run_id continues the
        run: pass ``trackhook.integrations.run_id_for(checkpoint_folder)`` to continue it when a
        script resumes with ``accelerator.load_state`` from there.
    :param tag: names the experiment (MLflow) or project (W&B); ``init_trackers``'
        ``project_name`` is not given to trackers passed as objects.
    :param config: the trackhook configuration, as for ``trackhook.start_run``.
    """

    name = "trackhook"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, run_id: str | None = None, tag: str = "", *, config: Any = None) -> None:
        super().__init__()
        self._training = TrainingRun(run_id, tag, config, "accelerate")

    @property
    def run_id(self) -> str:
        return self._training.run_id

    @property
    def tracker(self) -> Run:
        """The open trackhook run (opened now if it is not)."""
        return self._training.open()

    @on_main_process  # type: ignore[untyped-decorator]
    def start(self) -> None:
        """Open the run (``init_trackers``)."""
        self._training.open()

    @on_main_process  # type: ignore[untyped-decorator]
    def store_init_configuration(self, values: Mapping[str, Any]) -> None:
        """Track ``init_trackers``' ``config`` at step 0 as parameters, numbers included."""
        self._training.track_params(values)

    @on_main_process  # type: ignore[untyped-decorator]
    def log(self, values: Mapping[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Track ``values`` at ``step`` (without one: the last step logged)."""
        self._training.track_metrics(step, values)

    @on_main_process  # type: ignore[untyped-decorator]
    def finish(self) -> None:
        """Close the run as ``SUCCESS`` (``end_training``)."""
        self._training.close("SUCCESS")
