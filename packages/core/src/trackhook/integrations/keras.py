"""``TrackhookCallback``: a Keras 3 ``Callback`` that sends what ``model.fit`` logs through
trackhook, on any backend.

::

    from trackhook.integrations.keras import TrackhookCallback

    model.fit(x, y, epochs=5, callbacks=[TrackhookCallback(tag="mnist")])

The run opens when training begins, with the fit's parameters (``epochs``, ``steps``) and the
optimizer's configuration at step 0 as parameters, numbers included. The epoch-end logs (``loss``,
``val_loss``, the metrics) are tracked at the epoch (from 0, as Keras counts); with
``every_n_batches=N``, the batch logs too, every N batches, as ``batch_<name>`` at the count of
optimizer steps. The run closes as ``SUCCESS`` when training ends. Keras has no hook for a fit
that raises, so a fit that never reaches its end closes as ``FAIL``: when the interpreter exits,
or when the same callback's next fit begins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackhook.integrations._bridge import MissingFrameworkError, TrainingRun

try:
    import keras
except ImportError as error:
    raise MissingFrameworkError("keras", "Keras 3", "keras", error) from error

__all__ = ["TrackhookCallback"]


class TrackhookCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """A Keras ``Callback`` whose run is a trackhook run.

    :param run_id: names the run; generated when none is given. The same run_id continues the
        run: pass ``trackhook.integrations.run_id_for(backup_dir)`` with Keras'
        ``BackupAndRestore(backup_dir)`` to continue it when a fit resumes.
    :param tag: names the experiment (MLflow) or project (W&B).
    :param config: the trackhook configuration, as for ``trackhook.start_run``.
    :param every_n_batches: also track the batch logs every N batches; 0 (the default): only
        the epoch-end logs.
    """

    def __init__(
        self,
        run_id: str | None = None,
        tag: str = "",
        *,
        config: Any = None,
        every_n_batches: int = 0,
    ) -> None:
        super().__init__()
        if every_n_batches < 0:
            raise ValueError(f"every_n_batches must be 0 or more, got {every_n_batches}")
        self._training = TrainingRun(run_id, tag, config, "Keras")
        self._every_n_batches = every_n_batches
        self._optimizer_steps = 0

    @property
    def run_id(self) -> str:
        return self._training.run_id

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Open the run and track the fit's parameters and the optimizer's configuration.

        A fit of this callback that began and never ended raised: its run closes as ``FAIL``
        first, and this fit continues it.
        """
        self._training.begin()
        optimizer = getattr(self.model, "optimizer", None)
        params: dict[str, Any] = dict(self.params or {})
        if optimizer is not None:
            # its class, not the instance's name ("sgd_4"), which counts the optimizers made
            params["optimizer"] = {**optimizer.get_config(), "name": type(optimizer).__name__}
            self._optimizer_steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._training.track_params(params)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Track the epoch's logs at the epoch."""
        if logs:
            self._training.track_metrics(epoch, logs)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Every ``every_n_batches`` optimizer steps, track the batch logs as ``batch_<name>``."""
        self._optimizer_steps += 1
        if not self._every_n_batches or self._optimizer_steps % self._every_n_batches or not logs:
            return
        named = {f"batch_{key}": value for key, value in logs.items()}
        self._training.track_metrics(self._optimizer_steps, named)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Close the run as ``SUCCESS``."""
        self._training.end()
