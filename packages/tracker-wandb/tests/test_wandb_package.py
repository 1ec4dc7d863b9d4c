"""The package as the core finds it: entry point, lazy import, configuration, naming rules."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from pydantic import ValidationError

from trackhook import MetricRecord
from trackhook_wandb import STEP_METRIC, WandbConfig, WandbTracker, wandb_project, wandb_run_id
from trackhook_wandb._mapping import history_rows


def test_entry_point_wandb_names_the_tracker_class() -> None:
    (point,) = [
        point for point in entry_points(group="trackhook.trackers") if point.name == "wandb"
    ]
    assert point.load() is WandbTracker


def test_importing_the_package_does_not_import_wandb() -> None:
    code = "import sys, trackhook_wandb; sys.exit('wandb' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_mlflow_is_not_installed_alongside() -> None:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('mlflow') is not None)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_params_carry_their_step_in_their_key() -> None:
    assert WandbTracker.limits.param_key == "{key}_{step}"


def test_unknown_config_fields_are_errors() -> None:
    with pytest.raises(ValidationError, match="projekt"):
        WandbConfig.model_validate({"projekt": "typo"})


def test_mode_is_one_of_online_offline_disabled() -> None:
    with pytest.raises(ValidationError, match="mode"):
        WandbConfig.model_validate({"mode": "sometimes"})


def test_credentials_are_refused_in_settings() -> None:
    with pytest.raises(ValidationError, match="WANDB_API_KEY"):
        WandbConfig.model_validate({"settings": {"api_key": "secret"}})


def test_defaults_keep_machine_probes_and_console_capture_off() -> None:
    settings = WandbConfig().wandb_settings()
    assert settings["x_disable_stats"] is True
    assert settings["x_disable_machine_info"] is True
    assert settings["console"] == "off"
    assert settings["save_code"] is False


def test_free_form_settings_win_over_derived_ones() -> None:
    assert WandbConfig(settings={"console": "wrap"}).wandb_settings()["console"] == "wrap"


@pytest.mark.parametrize("run_id", ["clean-ride-1048", "run_1.2", "A" * 64])
def test_run_ids_wandb_accepts_are_kept(run_id: str) -> None:
    assert wandb_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["a b", "a/b", "a:b", "it's", "é", "A" * 65])
def test_other_run_ids_are_cleaned_and_suffixed_with_their_hash(run_id: str) -> None:
    made = wandb_run_id(run_id)
    assert len(made) <= 64
    assert re.fullmatch(r"[A-Za-z0-9_.-]*_[0-9a-f]{8}", made)


def test_different_run_ids_never_share_a_wandb_id() -> None:
    assert wandb_run_id("a b") != wandb_run_id("a/b")


def test_project_is_the_tag_else_the_configured_default() -> None:
    assert wandb_project("baseline", "fallback") == "baseline"
    assert wandb_project("", "fallback") == "fallback"
    assert wandb_project("", None) is None


def test_history_rows_sort_steps_and_never_merge_two_values_of_a_key() -> None:
    metrics = [
        MetricRecord("a", 1, 3, 0.0),
        MetricRecord("a", 2, 1, 0.0),
        MetricRecord("a", 3, 3, 0.0),
    ]
    assert history_rows(metrics) == [
        {STEP_METRIC: 1, "a": 2},
        {STEP_METRIC: 3, "a": 1},
        {STEP_METRIC: 3, "a": 3},
    ]
