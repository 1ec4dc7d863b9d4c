"""The package as the core finds it: entry point, lazy import, dependencies, configuration."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import ValidationError
from tensorboard.plugins.hparams import metadata as hparams_metadata

from trackhook import RunInfo
from trackhook_tensorboard import LIMITS, TensorBoardConfig, TensorBoardTracker, run_folder


def test_entry_point_tensorboard_names_the_tracker_class() -> None:
    (point,) = [
        point for point in entry_points(group="trackhook.trackers") if point.name == "tensorboard"
    ]
    assert point.load() is TensorBoardTracker


def test_importing_the_package_imports_neither_tensorboard_nor_any_tracker_or_framework() -> None:
    code = (
        "import sys, trackhook_tensorboard\n"
        "heavy = {'tensorboard', 'mlflow', 'wandb', 'tensorflow', 'torch'} & set(sys.modules)\n"
        "print(*sorted(heavy))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert imported.split() == []


@pytest.mark.parametrize("name", ["mlflow", "wandb", "tensorflow", "torch"])
def test_installing_the_package_brings_no_other_tracker_nor_framework(name: str) -> None:
    assert importlib.util.find_spec(name) is None


def test_the_writer_works_without_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from trackhook_tensorboard import RunWriter\n"
        f"RunWriter(pathlib.Path({str(tmp_path)!r})).add_scalar('loss', 0.5, 1)\n"
        "sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1


def test_params_carry_their_step_in_their_key() -> None:
    assert LIMITS.param_key == "{key}_{step}"


def test_the_hparams_plugins_own_tags_are_reserved() -> None:
    assert LIMITS.reserved_keys == {
        hparams_metadata.EXPERIMENT_TAG,
        hparams_metadata.SESSION_START_INFO_TAG,
        hparams_metadata.SESSION_END_INFO_TAG,
    }


def test_log_dir_defaults_to_runs() -> None:
    assert TensorBoardConfig().log_dir == "runs"


def test_unknown_config_fields_are_errors_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="logdir"):
        TensorBoardConfig.model_validate({"logdir": "typo"})


def test_an_empty_tag_uses_the_default_tag_folder() -> None:
    folder = run_folder("runs", RunInfo(run_id="r1", tag=""), "default")
    assert folder == Path("runs", "default", "r1")


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "x:y", "/abs"])
def test_tags_and_run_ids_that_are_not_one_folder_name_are_renamed_inside_log_dir(
    name: str,
) -> None:
    folder = run_folder("runs", RunInfo(run_id=name, tag=name), "default")
    assert folder.parent.parent == Path("runs")
    assert all(part not in {".", ".."} and "/" not in part for part in folder.parts)
    assert folder.name != name
