"""What the four framework bridges share: a run opened when training starts, closed when it ends.

A framework tells its logger or callback that training starts and that it has ended in separate
calls, so the run is opened with ``open_run`` and closed with ``close_run`` rather than inside a
``with`` block. What the framework hands over is made trackable first (``_convert``), and a value
the core still refuses is left out with a warning: no hook of a bridge fails the training because
of a value.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import trackhook
from trackhook.api import close_run, open_run, tracking_into
from trackhook.errors import (
    InvalidValueError,
    RunContinuedWarning,
    TrackhookError,
    warn_in_background,
)
from trackhook.integrations._convert import trackable_dict
from trackhook.records import Status
from trackhook.run import Run
from trackhook.runid import check_run_id, check_tag, generate_run_id

__all__ = ["MissingFrameworkError", "TrainingRun"]


class MissingFrameworkError(TrackhookError, ImportError):
    """A module of ``trackhook.integrations`` was imported without its framework installed."""

    def __init__(self, module: str, framework: str, extra: str, cause: ImportError) -> None:
        self.framework = framework
        super().__init__(
            f"trackhook.integrations.{module} needs {framework}, which could not be imported "
            f"({cause}); install it with: pip install {extra}, or pip install 'trackhook[{extra}]'"
        )


class TrainingRun:
    """The trackhook run of one logger or callback.

    The run_id is fixed when the bridge is made (generated when none is given), since frameworks
    show it before training starts (Lightning's ``version``) and checkpoints may keep it. Opened
    on first use and closed when training ends; a later training with the same bridge (a
    ``Trainer.test`` after ``fit``) continues the same run, without the warning that
    ``start_run`` gives for a closed run opened again: here it is the framework's normal course.
    """

    def __init__(self, run_id: str | None, tag: str, config: Any, framework: str) -> None:
        self.run_id = check_run_id(run_id) if run_id is not None else generate_run_id()
        self.tag = check_tag(tag)
        self.framework = framework
        self._config = config
        self._run: Run | None = None
        self._opened_before = False
        self._last_step = 0
        self.in_training = False
        """Training began (``begin``) and has not ended (``end``)."""

    @property
    def is_open(self) -> bool:
        """Whether the run is open now (training has started and not ended)."""
        return self._run is not None and not self._run.closed

    def open(self) -> Run:
        """The open run of this bridge, opened (again) now if it is not open."""
        if self._run is not None and self.is_open:
            return self._run
        with warnings.catch_warnings():
            if self._opened_before:
                warnings.simplefilter("ignore", RunContinuedWarning)
            self._run = open_run(self.run_id, self.tag, config=self._config)
        self._opened_before = True
        return self._run

    def close(self, status: Status) -> None:
        """Close the run, if it is open, with ``status``."""
        run, self._run = self._run, None
        if run is not None:
            close_run(run, status)

    def begin(self) -> None:
        """Training begins. One of this bridge that began and never ended raised (transformers
        and Keras call nothing then): its run closes as ``FAIL`` first, and this one continues
        it."""
        if self.in_training:
            self.close("FAIL")
        self.in_training = True

    def end(self) -> None:
        """Training ended: close the run as ``SUCCESS``."""
        self.in_training = False
        self.close("SUCCESS")

    def track_metrics(self, step: int | None, values: Mapping[Any, object]) -> None:
        """Track ``values`` at ``step`` (``None``: the last step tracked) as ``track_this`` does:
        numbers become metrics."""
        if step is not None:
            self._last_step = step
        run, at = self.open(), self._last_step
        self._each_or_one_by_one(values, lambda clean: run.track(at, clean))

    def track_params(
        self, values: Mapping[Any, object] | argparse.Namespace, step: int = 0
    ) -> None:
        """Track ``values`` at ``step`` as parameters, numbers included (``track_params``)."""
        run = self.open()

        def track(clean: dict[str, object]) -> None:
            # "step" is the one keyword that track_params cannot take as a value's name
            named = {key: value for key, value in clean.items() if key != "step"}
            with tracking_into(run):
                trackhook.track_params(step=step, **named)
            if len(named) < len(clean):
                warn_in_background(
                    f"the {self.framework} hyperparameter 'step' was not tracked: rename it"
                )

        self._each_or_one_by_one(values, track)

    def _each_or_one_by_one(
        self,
        values: Mapping[Any, object] | argparse.Namespace,
        track: Callable[[dict[str, object]], None],
    ) -> None:
        """Track every value in one call; if the core refuses one, the others one by one."""
        clean = trackable_dict(values)
        if not clean:
            return
        try:
            track(clean)
        except InvalidValueError:
            for key, value in clean.items():
                try:
                    track({key: value})
                except InvalidValueError as error:
                    warn_in_background(
                        f"{self.framework} handed over a value that was not tracked: {error}"
                    )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a ``ddp_spawn`` launch) without the open run, which is this process's."""
        return {**self.__dict__, "_run": None}
