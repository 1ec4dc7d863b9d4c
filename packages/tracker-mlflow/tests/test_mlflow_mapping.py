"""What an MLflow user finds after tracking with trackhook: SPEC's mapping table, on both stores."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from pydantic import BaseModel, Field

import trackhook
from trackhook.limits import TRUNCATION_MARK
from trackhook_mlflow import LATEST_TAG_PREFIX, LONG_PARAM_FOLDER, RUN_ID_TAG


class Eggs(BaseModel):
    ham: str = Field(alias="Ham")
    count: int = 3


def test_tag_names_the_experiment_and_run_id_the_run(run_in_mlflow: Any, names: Any) -> None:
    run, mlflow_run = run_in_mlflow(lambda: trackhook.track_this(loss=1.0))
    run_id, tag = names
    assert mlflow_run.info.run_name == run_id
    assert mlflow_run.data.tags[RUN_ID_TAG] == run_id
    facts = json.loads(run.run_log_path.read_text())["experiment_trackers"][0]["run"]
    assert facts["mlflow_run_id"] == mlflow_run.info.run_id
    assert facts["experiment_name"] == tag


def test_empty_tag_uses_the_default_experiment(
    tracking_uri: str, client: MlflowClient, mlflow_config: Any, find_run: Any
) -> None:
    run_id = f"untagged-{time.time_ns()}"
    config = mlflow_config(tracking_uri, mlflow={"default_experiment": "trackhook-default"})
    with trackhook.start_run(run_id, config=config):
        trackhook.track_this(x=1)
    assert find_run(client, "trackhook-default", run_id).data.metrics == {"x": 1.0}


def test_numbers_become_metrics_with_their_steps_and_tracking_times(
    run_in_mlflow: Any, client: MlflowClient, history: Any
) -> None:
    before = time.time()
    tracked_by: list[float] = []

    def body() -> None:
        for step in range(5):
            trackhook.track_this(step=step, loss=1.0 / (step + 1), epoch=step)
        tracked_by.append(time.time())
        time.sleep(0.3)  # values are stamped when tracked, not when delivered

    _, mlflow_run = run_in_mlflow(body)
    assert history(client, mlflow_run, "loss") == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert history(client, mlflow_run, "epoch") == [(s, float(s)) for s in range(5)]
    stamps = [m.timestamp for m in client.get_metric_history(mlflow_run.info.run_id, "loss")]
    assert all(before * 1000 - 1 <= stamp <= tracked_by[0] * 1000 + 1 for stamp in stamps)


def test_other_values_become_params_named_key_step(run_in_mlflow: Any) -> None:
    def body() -> None:
        trackhook.track_this(spam="hello", is_it_true=False, nothing=None, sizes=[1, 2.5, "x"])
        trackhook.track_this(step=3, spam="hey", flag=True)

    _, mlflow_run = run_in_mlflow(body)
    assert mlflow_run.data.params == {
        "spam_0": "hello",
        "is_it_true_0": "False",
        "nothing_0": "None",
        "sizes_0": '[1, 2.5, "x"]',
        "spam_3": "hey",
        "flag_3": "True",
    }


def test_nested_dicts_and_pydantic_models_are_flattened_to_dotted_keys(
    run_in_mlflow: Any,
) -> None:
    def body() -> None:
        trackhook.track_this(eggs=Eggs(Ham="world"), optim={"lr": 0.1, "name": "adam"})

    _, mlflow_run = run_in_mlflow(body)
    assert mlflow_run.data.metrics == {"eggs.count": 3.0, "optim.lr": 0.1}
    assert mlflow_run.data.params == {"eggs.Ham_0": "world", "optim.name_0": "adam"}


def test_nan_and_infinities_are_stored_as_metrics(run_in_mlflow: Any, client: MlflowClient) -> None:
    _, mlflow_run = run_in_mlflow(
        lambda: trackhook.track_this(nan=math.nan, up=math.inf, down=-math.inf)
    )
    metrics = mlflow_run.data.metrics
    assert math.isnan(metrics["nan"])
    # MLflow's SQL stores keep infinities as the largest finite double.
    assert metrics["up"] in (math.inf, sys.float_info.max)
    assert metrics["down"] in (-math.inf, -sys.float_info.max)


def test_a_successful_block_finishes_the_run(run_in_mlflow: Any) -> None:
    _, mlflow_run = run_in_mlflow(lambda: trackhook.track_this(x=1))
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.end_time is not None


def test_a_failing_block_fails_the_run(
    tracking_uri: str, client: MlflowClient, names: Any, mlflow_config: Any, find_run: Any
) -> None:
    run_id, tag = names
    with pytest.raises(ZeroDivisionError):
        with trackhook.start_run(run_id, tag, config=mlflow_config(tracking_uri)):
            trackhook.track_this(before_the_error=1)
            1 / 0  # noqa: B018
    mlflow_run = find_run(client, tag, run_id)
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.metrics == {"before_the_error": 1.0}


def test_the_same_run_id_continues_the_same_mlflow_run(
    tracking_uri: str,
    client: MlflowClient,
    names: Any,
    mlflow_config: Any,
    find_run: Any,
    history: Any,
) -> None:
    run_id, tag = names
    config = mlflow_config(tracking_uri)
    with trackhook.start_run(run_id, tag, config=config):
        trackhook.track_this(step=0, loss=1.0, optimiser="adam")
    with trackhook.start_run(run_id, tag, config=config):
        trackhook.track_this(step=1, loss=0.5, optimiser="adam")
    mlflow_run = find_run(client, tag, run_id)
    assert history(client, mlflow_run, "loss") == [(0, 1.0), (1, 0.5)]
    assert mlflow_run.data.params == {"optimiser_0": "adam", "optimiser_1": "adam"}


def test_a_continued_run_is_finished_again_when_its_block_ends(
    tracking_uri: str, client: MlflowClient, names: Any, mlflow_config: Any, find_run: Any
) -> None:
    run_id, tag = names
    config = mlflow_config(tracking_uri)
    for step in range(2):
        with trackhook.start_run(run_id, tag, config=config):
            trackhook.track_this(step=step, loss=1.0)
    assert find_run(client, tag, run_id).info.status == "FINISHED"


def test_config_tags_are_set_on_the_run(run_in_mlflow: Any) -> None:
    _, mlflow_run = run_in_mlflow(
        lambda: trackhook.track_this(x=1), mlflow={"tags": {"team": "vision", "stage": "dev"}}
    )
    assert mlflow_run.data.tags["team"] == "vision"
    assert mlflow_run.data.tags["stage"] == "dev"


def test_runs_carry_mlflows_own_user_and_source_tags(run_in_mlflow: Any) -> None:
    _, mlflow_run = run_in_mlflow(lambda: trackhook.track_this(x=1))
    assert mlflow_run.data.tags["mlflow.user"]
    assert mlflow_run.data.tags["mlflow.source.type"] == "LOCAL"


def test_a_long_param_is_truncated_and_kept_whole_as_an_artifact(
    run_in_mlflow: Any, client: MlflowClient, tmp_path: Path
) -> None:
    prompt = "".join(f"{n:05d} " for n in range(2000))  # 12,000 characters
    _, mlflow_run = run_in_mlflow(lambda: trackhook.track_this(prompt=prompt))
    stored = mlflow_run.data.params["prompt_0"]
    assert len(stored) <= 6000
    assert stored.endswith(TRUNCATION_MARK)
    assert prompt.startswith(stored[: -len(TRUNCATION_MARK)])
    local = client.download_artifacts(
        mlflow_run.info.run_id, f"{LONG_PARAM_FOLDER}/prompt_0.txt", str(tmp_path)
    )
    assert Path(local).read_text() == prompt


def test_keys_mlflow_cannot_store_are_renamed_without_collisions(run_in_mlflow: Any) -> None:
    def body() -> None:
        trackhook.track_this(**{"acc@top1": 0.9, "acc#top1": 0.8, "name?": "x"})

    with pytest.warns(trackhook.TrackhookWarning, match="cannot store the key"):
        run, mlflow_run = run_in_mlflow(body)
    metrics = mlflow_run.data.metrics
    assert sorted(metrics.values()) == [0.8, 0.9]
    assert len(metrics) == 2
    assert all(key.startswith("acc_top1_") for key in metrics)
    (param_key,) = mlflow_run.data.params
    assert param_key.startswith("name__0_")
    assert run.user_defined_metrics["acc@top1"] == 0.9  # the run log keeps the original key


def test_a_param_tracked_again_with_another_value_keeps_the_first_and_tags_the_latest(
    run_in_mlflow: Any,
) -> None:
    def body() -> None:
        trackhook.track_this(optimiser="adam")
        time.sleep(0.3)  # let the first value reach MLflow before it changes
        trackhook.track_this(optimiser="sgd")
        time.sleep(0.3)
        trackhook.track_this(optimiser="lamb")

    run, mlflow_run = run_in_mlflow(body)
    assert mlflow_run.data.params["optimiser_0"] == "adam"
    assert mlflow_run.data.tags[f"{LATEST_TAG_PREFIX}optimiser_0"] == "lamb"
    assert run.user_defined_metrics["optimiser"] == "lamb"
    assert mlflow_run.info.status == "FINISHED"


def test_environment_variables_are_tracked_at_close(
    run_in_mlflow: Any, client: MlflowClient, history: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKHOOK_TRACK_x_STEP_2", "0.5")
    monkeypatch.setenv("TRACKHOOK_TRACK_batch_size", "64")
    monkeypatch.setenv("TRACKHOOK_TRACK_mode", "true")
    _, mlflow_run = run_in_mlflow(lambda: None)
    assert history(client, mlflow_run, "x") == [(2, 0.5)]
    assert mlflow_run.data.metrics["batch_size"] == 64.0
    assert mlflow_run.data.params == {"mode_0": "true"}


def test_a_local_folder_store_works_where_mlflow_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_config: Any, find_run: Any
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's own opt-in to folders
    uri = (tmp_path / "mlruns").as_uri()
    with trackhook.start_run("folder-run", "folder", config=mlflow_config(uri)):
        trackhook.track_this(loss=0.5, optimiser="adam")
    mlflow_run = find_run(MlflowClient(uri), "folder", "folder-run")
    assert mlflow_run.data.metrics == {"loss": 0.5}
    assert mlflow_run.data.params == {"optimiser_0": "adam"}
    assert mlflow_run.info.status == "FINISHED"
