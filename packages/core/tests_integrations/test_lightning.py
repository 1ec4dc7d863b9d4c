"""``TrackhookLogger`` in real Lightning fits on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import trackhook
from trackhook.integrations import run_id_for
from trackhook.integrations.lightning import TrackhookLogger
from trackhook.testing import recording

from .conftest import mlflow_config, mlflow_history, mlflow_run, recording_config
from .tiny_lightning import TinyRegression, random_data, tiny_trainer

STEPS = [1, 2, 3, 4, 5, 6, 7, 8]  # Lightning logs after each optimizer step: 2 epochs of 4


def test_name_is_the_tag_and_version_the_run_id() -> None:
    logger = TrackhookLogger("clean-ride-1048", tag="baseline")
    assert (logger.name, logger.version) == ("baseline", "clean-ride-1048")


def test_a_fit_tracks_hyperparameters_as_params_and_metrics_at_the_global_step(
    tmp_path: Path,
) -> None:
    with recording() as recorder:
        logger = TrackhookLogger("fit", tag="tiny", config=recording_config())
        tiny_trainer(logger, tmp_path).fit(TinyRegression(learning_rate=0.05), random_data())
    assert recorder.params() == {"learning_rate": 0.05, "fail_at_step": None}
    assert sorted(recorder.metrics("train_loss")) == [step - 1 for step in STEPS]
    assert sorted(recorder.metrics("train_mae")) == [step - 1 for step in STEPS]
    assert recorder.statuses() == ["SUCCESS"]


def test_a_fit_that_raises_closes_the_run_as_fail(tmp_path: Path) -> None:
    with recording() as recorder:
        logger = TrackhookLogger("broken", config=recording_config())
        trainer = tiny_trainer(logger, tmp_path)
        with pytest.raises(RuntimeError, match="broke down"):
            trainer.fit(TinyRegression(fail_at_step=3), random_data())
    assert recorder.statuses() == ["FAIL"]
    assert sorted(recorder.metrics("train_loss")) == [0, 1, 2]
    assert json.loads(Path(".run_log_store/broken.json").read_text())["status"] == "FAIL"


class Tested(TinyRegression):
    def test_step(self, batch: object, batch_index: int) -> None:
        self.log("test_loss", 1.5)


def test_a_test_after_the_fit_continues_the_same_run(tmp_path: Path) -> None:
    with recording() as recorder:
        logger = TrackhookLogger("fit-then-test", config=recording_config())
        trainer = tiny_trainer(logger, tmp_path)
        model = Tested()
        trainer.fit(model, random_data())
        trainer.test(model, random_data())
    assert recorder.metrics("test_loss") == {8: 1.5}
    assert recorder.statuses() == ["SUCCESS", "SUCCESS"]
    assert {call.kwargs["run"].run_id for call in recorder.calls} == {"fit-then-test"}


def test_track_this_inside_a_training_step_lands_in_the_loggers_run(tmp_path: Path) -> None:
    class TracksItsOwn(TinyRegression):
        def on_train_epoch_end(self) -> None:
            trackhook.track_this(step=self.current_epoch, epochs_done=self.current_epoch + 1)

    with recording() as recorder:
        logger = TrackhookLogger("own-values", config=recording_config())
        tiny_trainer(logger, tmp_path).fit(TracksItsOwn(), random_data())
    assert recorder.metrics("epochs_done") == {0: 1.0, 1: 2.0}


def test_a_fit_lands_in_mlflow(tmp_path: Path, sqlite_uri: str, names: tuple[str, str]) -> None:
    run_id, tag = names
    logger = TrackhookLogger(run_id, tag, config=mlflow_config(sqlite_uri))
    tiny_trainer(logger, tmp_path).fit(TinyRegression(learning_rate=0.05), random_data())
    run = mlflow_run(sqlite_uri, tag, run_id)
    assert run.data.params == {"learning_rate_0": "0.05", "fail_at_step_0": "None"}
    assert [step for step, _ in mlflow_history(sqlite_uri, run, "train_loss")] == [
        step - 1 for step in STEPS
    ]
    assert run.info.status == "FINISHED"


def test_a_ddp_fit_on_two_processes_opens_one_run_and_sends_each_value_once(
    tmp_path: Path,
) -> None:
    # The example plugin trackhook-jsonl writes every hook call to a file, whatever the process:
    # lighter to start in two processes than MLflow, which the other tests use.
    values = tmp_path / "values.jsonl"
    config = tmp_path / "trackhook.json"
    config.write_text(
        json.dumps({"experiment_tracker": {"type": "jsonl", "config": {"path": str(values)}}})
    )
    script = Path(__file__).with_name("ddp_fit.py")
    subprocess.run(
        [sys.executable, str(script), "ddp", "tiny", str(config)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    calls = [json.loads(line) for line in values.read_text().splitlines()]
    assert [call["event"] for call in calls if call["event"] in ("open", "close")] == [
        "open",
        "close",
    ]
    assert calls[-1]["status"] == "SUCCESS"
    # 32 samples shared by 2 processes in batches of 8: 2 steps an epoch, each logged once
    losses = [call["step"] for call in calls if call.get("key") == "train_loss"]
    assert losses == [0, 1, 2, 3]
    params = {call["key"]: call["value"] for call in calls if call["event"] == "param"}
    assert params == {"learning_rate": 0.1, "fail_at_step": None}
    assert [path.name for path in Path(".run_log_store").glob("*.json")] == ["ddp.json"]


def test_a_fit_resumed_from_its_checkpoint_continues_the_run_kept_in_its_folder(
    tmp_path: Path,
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    folder = tmp_path / "checkpoints"
    with recording() as recorder:
        for epochs in (1, 2):  # the second fit is a restart, with a new logger and trainer
            logger = TrackhookLogger(run_id_for(folder), config=recording_config())
            checkpoints = ModelCheckpoint(dirpath=folder, save_last=True)
            trainer = tiny_trainer(
                logger,
                tmp_path,
                max_epochs=epochs,
                enable_checkpointing=True,
                callbacks=[checkpoints],
            )
            trainer.fit(TinyRegression(), random_data(), ckpt_path="last")
    assert {call.kwargs["run"].run_id for call in recorder.calls} == {run_id_for(folder)}
    assert sorted(recorder.metrics("train_loss")) == [step - 1 for step in STEPS]
    assert recorder.statuses() == ["SUCCESS", "SUCCESS"]
