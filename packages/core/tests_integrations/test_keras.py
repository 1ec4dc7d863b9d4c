"""``TrackhookCallback`` for Keras 3 in real ``model.fit`` calls on the torch backend (CPU)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from trackhook.integrations.keras import TrackhookCallback
from trackhook.testing import recording

from .conftest import mlflow_config, mlflow_history, mlflow_run, recording_config

EPOCHS = 3
SAMPLES, BATCH_SIZE = 32, 8  # 4 batches an epoch


class BreaksAtEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if epoch == 1:
            raise RuntimeError("the training broke down")


def tiny_fit(*callbacks: keras.callbacks.Callback, epochs: int = EPOCHS) -> None:
    generator = np.random.default_rng(0)
    features = generator.normal(size=(SAMPLES, 4)).astype("float32")
    targets = generator.normal(size=(SAMPLES, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    model.fit(
        features,
        targets,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        validation_split=0.25,
        callbacks=list(callbacks),
        verbose=0,
    )


def test_keras_runs_on_the_torch_backend() -> None:
    assert keras.backend.backend() == "torch"


def test_a_fit_tracks_its_params_and_the_epoch_logs_at_the_epoch() -> None:
    with recording() as recorder:
        tiny_fit(TrackhookCallback("fit", config=recording_config()))
    params = recorder.params()
    assert (params["epochs"], params["optimizer.name"]) == (EPOCHS, "SGD")
    assert params["optimizer.learning_rate"] == pytest.approx(0.05)
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert sorted(recorder.metrics(key)) == [0, 1, 2], key
    assert recorder.statuses() == ["SUCCESS"]


def test_every_n_batches_tracks_the_batch_logs_at_the_optimizer_step() -> None:
    with recording() as recorder:
        tiny_fit(TrackhookCallback("batches", config=recording_config(), every_n_batches=2))
    # 24 training samples (a quarter is held out) in batches of 8: 3 steps an epoch, 9 in all
    assert sorted(recorder.metrics("batch_loss")) == [2, 4, 6, 8]


def test_a_fit_that_raised_closes_as_fail_when_the_next_fit_begins() -> None:
    callback = TrackhookCallback("retried", config=recording_config())
    with recording() as recorder:
        with pytest.raises(RuntimeError, match="broke down"):
            tiny_fit(callback, BreaksAtEpoch())
        assert recorder.statuses() == []
        tiny_fit(callback, epochs=1)
    assert recorder.statuses() == ["FAIL", "SUCCESS"]


def test_a_fit_lands_in_mlflow(sqlite_uri: str, names: tuple[str, str]) -> None:
    run_id, tag = names
    tiny_fit(TrackhookCallback(run_id, tag, config=mlflow_config(sqlite_uri)))
    run = mlflow_run(sqlite_uri, tag, run_id)
    assert run.data.params["epochs_0"] == str(EPOCHS)
    assert run.data.params["optimizer.name_0"] == "SGD"
    assert [step for step, _ in mlflow_history(sqlite_uri, run, "val_loss")] == [0, 1, 2]
    assert run.info.status == "FINISHED"
    assert Path(f".run_log_store/{run_id}.json").is_file()
