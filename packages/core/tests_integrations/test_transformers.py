"""``TrackhookCallback`` for transformers in a real ``Trainer`` on a tiny BERT, on CPU.

The model is built from a small ``BertConfig``: nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from trackhook.integrations.transformers import TrackhookCallback
from trackhook.testing import recording

from .conftest import mlflow_config, mlflow_history, mlflow_run, recording_config

MAX_STEPS = 4


class RandomSentences(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, count: int = 16, length: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 30, (count, length), generator=generator)
        self.labels = torch.randint(0, 2, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


class BreaksAtStep(TrainerCallback):  # type: ignore[misc]
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 2:
            raise RuntimeError("the training broke down")


def tiny_trainer(folder: Path, callback: TrackhookCallback, *more: Any, **settings: Any) -> Trainer:
    config = BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=2,
    )
    args = TrainingArguments(
        output_dir=str(folder / "out"),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=0.01,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **settings,
    )
    return Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=RandomSentences(),
        eval_dataset=RandomSentences(8),
        callbacks=[callback, *more],
    )


def test_training_tracks_the_arguments_as_params_and_logs_at_the_global_step(
    tmp_path: Path,
) -> None:
    with recording() as recorder:
        tiny_trainer(tmp_path, TrackhookCallback("bert", config=recording_config())).train()
    params = recorder.params()
    assert (params["learning_rate"], params["max_steps"], params["use_cpu"]) == (
        0.01,
        MAX_STEPS,
        True,
    )
    assert sorted(recorder.metrics("loss")) == [1, 2, 3, 4]
    assert sorted(recorder.metrics("eval_loss")) == [2, 4]
    assert recorder.statuses() == ["SUCCESS"]


def test_each_evaluation_metric_reaches_the_tracker_once(tmp_path: Path) -> None:
    with recording() as recorder:
        tiny_trainer(tmp_path, TrackhookCallback("once", config=recording_config())).train()
    eval_losses = [record for record in recorder.metric_records() if record.key == "eval_loss"]
    assert [record.step for record in eval_losses] == [2, 4]


def test_a_training_that_raised_closes_as_fail_when_the_next_training_begins(
    tmp_path: Path,
) -> None:
    callback = TrackhookCallback("retried", config=recording_config())
    with recording() as recorder:
        with pytest.raises(RuntimeError, match="broke down"):
            tiny_trainer(tmp_path, callback, BreaksAtStep()).train()
        assert recorder.statuses() == []
        tiny_trainer(tmp_path, callback).train()
    assert recorder.statuses() == ["FAIL", "SUCCESS"]


def test_an_evaluation_on_its_own_opens_and_closes_the_run(tmp_path: Path) -> None:
    with recording() as recorder:
        tiny_trainer(tmp_path, TrackhookCallback("eval", config=recording_config())).evaluate()
    assert list(recorder.metrics("eval_loss")) == [0]
    assert recorder.statuses() == ["SUCCESS"]


def test_training_lands_in_mlflow(tmp_path: Path, sqlite_uri: str, names: tuple[str, str]) -> None:
    run_id, tag = names
    callback = TrackhookCallback(run_id, tag, config=mlflow_config(sqlite_uri))
    tiny_trainer(tmp_path, callback).train()
    run = mlflow_run(sqlite_uri, tag, run_id)
    assert run.data.params["learning_rate_0"] == "0.01"
    assert run.data.params["max_steps_0"] == str(MAX_STEPS)
    assert [step for step, _ in mlflow_history(sqlite_uri, run, "loss")] == [1, 2, 3, 4]
    assert [step for step, _ in mlflow_history(sqlite_uri, run, "eval_loss")] == [2, 4]
    assert run.info.status == "FINISHED"
    assert json.loads(Path(f".run_log_store/{run_id}.json").read_text())["status"] == "SUCCESS"
