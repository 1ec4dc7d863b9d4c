"""The package as the core and a user meet it: entry point, import cost, configuration, limits."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from pydantic import ValidationError

import trackhook
from trackhook_mlflow import LIMITS, MlflowConfig, MlflowTracker


def test_the_entry_point_mlflow_names_the_tracker_class() -> None:
    (point,) = [p for p in entry_points(group="trackhook.trackers") if p.name == "mlflow"]
    assert point.load() is MlflowTracker
    assert point.dist is not None
    assert point.dist.name == "trackhook-mlflow"


def test_importing_the_package_does_not_import_mlflow() -> None:
    code = (
        "import sys, trackhook, trackhook_mlflow\n"
        "loaded = sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wandb_is_not_installed_alongside() -> None:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('wandb') is not None)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_server_url_is_an_alias_of_tracking_uri() -> None:
    assert MlflowConfig.model_validate({"server_url": "http://h:5000"}).tracking_uri == (
        "http://h:5000"
    )
    assert MlflowConfig.model_validate({"tracking_uri": "sqlite:///m.db"}).tracking_uri == (
        "sqlite:///m.db"
    )


@pytest.mark.parametrize(
    "uri",
    ["http://h:5000", "sqlite:///m.db", "postgresql+psycopg2://u@h/db", "/tmp/mlruns", "file:///x"],
)
def test_tracking_uris_mlflow_takes_are_accepted(uri: str) -> None:
    assert MlflowConfig.model_validate({"tracking_uri": uri}).tracking_uri == uri


def test_a_misspelt_tracking_uri_scheme_is_an_error_with_a_guess() -> None:
    with pytest.raises(ValidationError, match="scheme 'htp' \\(did you mean 'http'\\?"):
        MlflowConfig.model_validate({"tracking_uri": "htp://127.0.0.1:5000"})


def test_tracking_uri_and_its_alias_together_are_one_clear_error() -> None:
    with pytest.raises(ValidationError, match="tracking_uri or its alias server_url, not both"):
        MlflowConfig.model_validate({"tracking_uri": "sqlite:///a.db", "server_url": "http://h"})


def test_defaults_leave_the_uri_to_mlflow_and_bound_the_retries() -> None:
    config = MlflowConfig()
    assert config.tracking_uri is None
    assert config.default_experiment == "Default"
    assert config.max_retries <= 3
    assert config.request_timeout <= 30


def test_an_unknown_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="tracking_url"):
        MlflowConfig.model_validate({"tracking_url": "http://h"})


def test_an_invalid_setting_is_reported_by_the_core_with_the_field(tmp_path: object) -> None:
    config = {"experiment_tracker": {"type": "mlflow", "config": {"max_retries": -1}}}
    with pytest.raises(trackhook.ConfigError, match="max_retries"):
        with trackhook.start_run("bad-config", config=config):
            pass


def test_the_declared_limits_are_mlflows() -> None:
    from mlflow.utils import validation

    assert LIMITS.max_key_length == validation.MAX_ENTITY_KEY_LENGTH
    assert LIMITS.max_param_length == validation.MAX_PARAM_VAL_LENGTH
    assert LIMITS.max_metrics_per_batch == validation.MAX_METRICS_PER_BATCH
    assert LIMITS.max_params_per_batch == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert LIMITS.max_values_per_batch == validation.MAX_ENTITIES_PER_BATCH
    assert LIMITS.param_key.format(key="spam", step=0) == "spam_0"


@pytest.mark.parametrize(
    ("key", "storable"),
    [
        ("loss", True),
        ("train/loss", True),
        ("a b.c-d_e", True),
        ("acc@1", False),
        ("x" * 251, False),
    ],
)
def test_the_declared_key_rule_matches_mlflows_validation(key: str, storable: bool) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric

    assert (LIMITS.storable_key(key) == key) is storable
    _validate_metric(LIMITS.storable_key(key), 1.0, 0, 0)  # what the core sends, MLflow accepts
    if not storable:
        with pytest.raises(MlflowException):
            _validate_metric(key, 1.0, 0, 0)
