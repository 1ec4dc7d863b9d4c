"""trackhook's user API into a real offline W&B run, read back from the transaction log."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

import trackhook
from trackhook_wandb import STEP_METRIC

Read = Callable[..., Any]  # the read_run fixture: returns a WandbRunFile of conftest.py
TRACKHOOK = str(Path(sys.executable).with_name("trackhook"))  # the core's console script


class Eggs(BaseModel):
    ham: str = Field(alias="Ham")


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run log store is relative to the working directory
    monkeypatch.delenv("TRACKHOOK_CONFIG", raising=False)


def wandb_config(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    settings = {"mode": "offline", "dir": str(tmp_path), **fields}
    return {"experiment_tracker": {"type": "wandb", "config": settings}}


def run_log(run_id: str) -> dict[str, Any]:
    return json.loads(Path(".run_log_store", f"{run_id}.json").read_text(encoding="utf-8"))


def test_the_spec_example_lands_in_wandb(tmp_path: Path, read_run: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="baseline", config=wandb_config(tmp_path)):
        trackhook.track_this(spam="hello", eggs=Eggs(Ham="world"), answer=42.0, is_it_true=False)
        trackhook.track_this(step=1, spam="hey", eggs={"ham": "universe"}, loss={"train": 0.5})
    logged = read_run(run_id)
    assert (logged.run.project, logged.run.display_name) == ("baseline", run_id)
    assert logged.rows_without_internals() == [
        {STEP_METRIC: 0, "answer": 42.0},
        {STEP_METRIC: 1, "loss.train": 0.5},
    ]
    assert logged.config == {
        "spam_0": "hello",
        "eggs.Ham_0": "world",
        "is_it_true_0": False,
        "spam_1": "hey",
        "eggs.ham_1": "universe",
    }
    assert logged.exit_code == 0


def test_out_of_order_and_repeated_steps_all_arrive(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    steps = [5, 2, 2, 0, 9, 1]
    with trackhook.start_run(run_id=run_id, tag="steps", config=wandb_config(tmp_path)):
        for index, step in enumerate(steps):
            trackhook.track_this(step=step, loss=float(index))
    arrived = sorted(read_run(run_id).values_of("loss"))
    assert arrived == sorted((step, float(index)) for index, step in enumerate(steps))


def test_keys_wandb_writes_itself_are_renamed_not_overwritten(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    from trackhook_wandb import WandbTracker

    renamed = WandbTracker.limits.storable_key("_step")
    with pytest.warns(trackhook.TrackhookWarning, match="'_step'"):
        with trackhook.start_run(run_id=run_id, tag="reserved", config=wandb_config(tmp_path)):
            trackhook.track_this(step=1, **{"_step": 41.0, STEP_METRIC: 3.0})
    logged = read_run(run_id)
    assert renamed.startswith("_step_")
    assert logged.values_of(renamed) == [(1, 41.0)]
    assert logged.values_of(WandbTracker.limits.storable_key(STEP_METRIC)) == [(1, 3.0)]


def test_nan_and_long_values_arrive(tmp_path: Path, read_run: Read, run_id: str) -> None:
    text = "long " * 20_000
    with trackhook.start_run(run_id=run_id, tag="values", config=wandb_config(tmp_path)):
        trackhook.track_this(loss=math.nan, text=text, sizes=[1, 2, 3])
    logged = read_run(run_id)
    (value,) = [value for _, value in logged.values_of("loss")]
    assert math.isnan(value)
    assert logged.config == {"text_0": text, "sizes_0": [1, 2, 3]}


def test_a_failing_block_fails_the_wandb_run(tmp_path: Path, read_run: Read, run_id: str) -> None:
    def failing_block() -> None:
        with trackhook.start_run(run_id=run_id, tag="status", config=wandb_config(tmp_path)):
            trackhook.track_this(before=1.0)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_block()
    logged = read_run(run_id)
    assert logged.exit_code != 0
    assert logged.values_of("before") == [(0, 1.0)]


def test_the_same_run_id_continues_the_wandb_run(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    for step in (0, 1):
        with trackhook.start_run(run_id=run_id, tag="resume", config=wandb_config(tmp_path)):
            trackhook.track_this(step=step, loss=1.0 / (step + 1))
    first, second = read_run(run_id, 0), read_run(run_id, 1)
    assert first.run.run_id == second.run.run_id == run_id
    assert second.run.resume
    assert first.values_of("loss") + second.values_of("loss") == [(0, 1.0), (1, 0.5)]


def test_the_client_context_is_the_wandb_run(tmp_path: Path, read_run: Read, run_id: str) -> None:
    import wandb

    config = wandb_config(tmp_path)
    with (
        trackhook.start_run(run_id=run_id, tag="native", config=config),
        trackhook.get_experiment_tracker_context() as native,
    ):
        assert isinstance(native, wandb.Run)
        native.log({"native": 1})
    assert [row["native"] for row in read_run(run_id).history if "native" in row] == [1]


def test_the_run_log_names_the_wandb_run_without_credentials(
    tmp_path: Path, read_run: Read, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    with trackhook.start_run(run_id=run_id, tag="facts", config=wandb_config(tmp_path)):
        trackhook.track_this(x=1)
    (tracker,) = run_log(run_id)["experiment_trackers"]
    assert tracker["run"]["run_id"] == run_id
    assert Path(tracker["run"]["run_dir"]) == read_run(run_id).path.parent
    assert secret not in Path(".run_log_store", f"{run_id}.json").read_text(encoding="utf-8")


def test_the_readme_example_configuration_works(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    Path("trackhook.yaml").write_text(
        "experiment_tracker:\n"
        "  type: wandb\n"
        "  config:\n"
        "    project: my-project\n"
        "    mode: offline\n"
        "    dir: wandb-runs\n"
        "    group: sweeps\n"
        "    job_type: train\n"
        "    tags: [baseline, trackhook]\n",
        encoding="utf-8",
    )
    with trackhook.start_run(run_id=run_id):
        trackhook.track_this(loss=0.5)
    logged = read_run(run_id, root=tmp_path / "wandb-runs")
    assert logged.run.project == "my-project"
    assert (logged.run.run_group, logged.run.job_type) == ("sweeps", "train")
    assert list(logged.run.tags) == ["baseline", "trackhook"]


def test_an_invalid_config_names_the_tracker_and_field(tmp_path: Path) -> None:
    invalid = wandb_config(tmp_path, mode="sometimes")
    with pytest.raises(trackhook.ConfigError, match=r"'wandb'.*'mode'"):
        trackhook.start_run(config=invalid).__enter__()


def test_disabled_mode_tracks_into_the_run_log_only(tmp_path: Path, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, config=wandb_config(tmp_path / "w", mode="disabled")):
        trackhook.track_this(loss=0.5, spam="hello")
    assert run_log(run_id)["user_defined_metrics"] == {"loss": 0.5, "spam": "hello"}
    assert not (tmp_path / "w").exists()
    assert not list(tmp_path.rglob("*.wandb"))


def test_many_values_all_arrive(tmp_path: Path, read_run: Read, run_id: str) -> None:
    with trackhook.start_run(run_id=run_id, tag="many", config=wandb_config(tmp_path)):
        for step in range(500):
            trackhook.track_this(step=step, loss=step / 10, acc=1 - step / 1000)
    logged = read_run(run_id)
    assert logged.values_of("loss") == [(step, step / 10) for step in range(500)]
    assert len(logged.values_of("acc")) == 500


def test_wandb_is_imported_on_the_delivery_thread_not_the_callers(tmp_path: Path) -> None:
    script = f"""
import importlib.abc, sys, threading

importers = []


class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "wandb":
            importers.append(threading.current_thread().name)


sys.meta_path.insert(0, Spy())
import trackhook

with trackhook.start_run(config={wandb_config(tmp_path)!r}):
    trackhook.track_this(loss=0.5)
print(importers)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    importers = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert importers
    assert threading.main_thread().name not in importers


IMPLICIT_RUN_SCRIPT = """
import trackhook
trackhook.track_this(step=1, loss=0.5)
if {wait_for_open}:
    with trackhook.get_experiment_tracker_context():  # waits until W&B has opened the run
        pass
trackhook.track_this(step=2, loss=0.25)
"""


def run_implicitly(tmp_path: Path, run_id: str, *, wait_for_open: bool) -> str:
    """A script with no start_run, in a run named by the environment; returns its stderr."""
    config = tmp_path / "trackhook.yaml"
    config.write_text(json.dumps(wandb_config(tmp_path)))
    script = IMPLICIT_RUN_SCRIPT.format(wait_for_open=wait_for_open)
    env = {**os.environ, "TRACKHOOK_RUN_ID": run_id, "TRACKHOOK_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_an_implicit_run_delivers_its_last_values_before_wandb_finishes_the_run(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    # W&B registers an exit handler that finishes its run; trackhook's must run first.
    stderr = run_implicitly(tmp_path, run_id, wait_for_open=True)
    logged = read_run(run_id)
    assert logged.values_of("loss") == [(1, 0.5), (2, 0.25)]
    assert logged.exit_code == 0
    assert "TrackhookWarning" not in stderr
    assert run_log(run_id)["experiment_trackers"][0]["delivery"]["undelivered"] == 0


def test_an_implicit_run_ending_before_wandb_opened_leaves_its_values_to_sync(
    tmp_path: Path, read_run: Read, run_id: str
) -> None:
    # At interpreter exit W&B can no longer start: the values wait in the spool, the warning
    # says how to deliver them, and `trackhook sync` does.
    stderr = run_implicitly(tmp_path, run_id, wait_for_open=False)
    document = run_log(run_id)
    undelivered = document["experiment_trackers"][0]["delivery"]["undelivered"]
    if undelivered:
        assert f"trackhook sync {run_id}" in stderr
        sync = subprocess.run(
            [TRACKHOOK, "--config", str(tmp_path / "trackhook.yaml"), "sync", run_id],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sync.returncode == 0, sync.stderr
    assert read_run(run_id).values_of("loss") == [(1, 0.5), (2, 0.25)]
