"""``TrackhookCallback``: a transformers ``TrainerCallback`` that sends a ``Trainer``'s logs
through trackhook.

::

    from transformers import Trainer
    from trackhook.integrations.transformers import TrackhookCallback

    trainer = Trainer(model, args, train_dataset=data, callbacks=[TrackhookCallback(tag="bert")])
    trainer.train()

Give ``report_to="none"`` in the ``TrainingArguments`` so that transformers does not also add the
callbacks of every tracker library it finds installed.

The run opens when training begins, with the ``TrainingArguments`` at step 0 as parameters
(numbers included, secrets hidden as ``TrainingArguments.to_dict`` hides them); what the
``Trainer`` logs (``on_log``, ``on_evaluate``) is tracked at ``state.global_step``. The run closes
as ``SUCCESS`` when training ends. transformers has no hook for a training that raises, so a
training that never reaches its end closes as ``FAIL``: when the interpreter exits, or when the
same callback's next training begins. Only the world's process zero sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackhook.integrations._bridge import MissingFrameworkError, TrainingRun

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as error:
    raise MissingFrameworkError("transformers", "transformers", "transformers", error) from error

__all__ = ["TrackhookCallback"]


class TrackhookCallback(TrainerCallback):  # type: ignore[misc]
    """A ``TrainerCallback`` whose run is a trackhook run.

    :param run_id: names the run; generated when none is given. The same run_id continues the
        run: pass ``trackhook.integrations.run_id_for(args.output_dir)`` to continue it when
        training resumes from a checkpoint there.
    :param tag: names the experiment (MLflow) or project (W&B).
    :param config: the trackhook configuration, as for ``trackhook.start_run``.
    """

    def __init__(self, run_id: str | None = None, tag: str = "", *, config: Any = None) -> None:
        self._training = TrainingRun(run_id, tag, config, "transformers")
        self._tracked_at_step: dict[str, object] = {}
        self._step = -1

    @property
    def run_id(self) -> str:
        return self._training.run_id

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Open the run and track the ``TrainingArguments`` as parameters at step 0.

        A training of this callback that began and never ended raised: its run closes as
        ``FAIL`` first, and this training continues it.
        """
        if not state.is_world_process_zero:
            return
        self._training.begin()
        self._training.track_params(args.to_dict())

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Track what the ``Trainer`` logs at its global step."""
        if state.is_world_process_zero and logs:
            self._track(state.global_step, logs)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Track the evaluation's metrics at the global step, unless ``on_log`` already did.

        An evaluation outside training (``trainer.evaluate()`` on its own) closes the run as
        ``SUCCESS`` once it is tracked.
        """
        if not state.is_world_process_zero:
            return
        if metrics:
            self._track(state.global_step, metrics)
        if not self._training.in_training:
            self._training.close("SUCCESS")

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the run as ``SUCCESS``."""
        if state.is_world_process_zero:
            self._training.end()

    def _track(self, step: int, values: Mapping[str, Any]) -> None:
        """Track the values not already tracked with the same value at this step.

        The ``Trainer`` hands an evaluation's metrics to ``on_log`` and then to ``on_evaluate``:
        each must reach the trackers once.
        """
        if step != self._step:
            self._step, self._tracked_at_step = step, {}
        new = {
            key: value
            for key, value in values.items()
            if not _same(self._tracked_at_step.get(key, _NOTHING), value)
        }
        self._tracked_at_step.update(new)
        if new:
            self._training.track_metrics(step, new)


_NOTHING = object()


def _same(tracked: object, value: object) -> bool:
    try:
        return tracked is value or bool(tracked == value)
    except Exception:  # an array's comparison has no single truth value
        return False
