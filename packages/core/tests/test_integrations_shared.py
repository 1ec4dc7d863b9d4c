"""What the framework bridges share, without any framework: conversions, kept run_ids, imports."""

from __future__ import annotations

import argparse
import enum
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from trackhook.errors import TrackhookWarning
from trackhook.integrations import RUN_ID_FILE, run_id_for
from trackhook.integrations._bridge import TrainingRun
from trackhook.integrations._convert import MAX_LISTED_ELEMENTS, trackable, trackable_dict
from trackhook.runid import check_run_id
from trackhook.testing import recording

from .conftest import recording_config


class Colour(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque"


@pytest.mark.parametrize(
    ("value", "converted"),
    [
        (np.float32(0.5), 0.5),
        (np.int64(3), 3),
        (np.bool_(True), True),
        (np.array([1, 2]), [1, 2]),
        (Colour.RED, "red"),
        (Path("data/train.csv"), "data/train.csv"),
        (argparse.Namespace(lr=0.1, name="a"), {"lr": 0.1, "name": "a"}),
        ({1: "int key", (2, 3): "tuple key"}, {"1": "int key", "(2, 3)": "tuple key"}),
        ((1, {2}), [1, [2]]),
        (Decimal("1.5"), "1.5"),
        (b"bytes", "b'bytes'"),
        (Opaque(), "opaque"),
        (Opaque, f"{__name__}.Opaque"),
        (len, "builtins.len"),
        (2**2000, str(2**2000)),
    ],
)
def test_what_a_framework_hands_over_becomes_trackable(value: object, converted: object) -> None:
    assert trackable(value) == converted


def test_a_large_array_is_described_not_listed() -> None:
    large = np.zeros((MAX_LISTED_ELEMENTS + 1,), dtype="float32")
    assert trackable(large) == f"ndarray(shape=({MAX_LISTED_ELEMENTS + 1},), dtype=float32)"


def test_a_dict_that_contains_itself_does_not_raise() -> None:
    looping: dict[str, object] = {}
    looping["self"] = looping
    assert isinstance(trackable(looping), dict)


def test_a_namespace_of_hyperparameters_becomes_a_dict_of_str_keys() -> None:
    assert trackable_dict(argparse.Namespace(lr=np.float64(0.1))) == {"lr": 0.1}


def test_run_id_for_a_folder_is_generated_once_and_read_back(tmp_path: Path) -> None:
    first = run_id_for(tmp_path / "checkpoints")
    assert check_run_id(first) == first
    assert run_id_for(tmp_path / "checkpoints") == first
    assert (tmp_path / "checkpoints" / RUN_ID_FILE).read_text().strip() == first
    assert run_id_for(tmp_path / "other") != first


def test_importing_the_integrations_imports_no_framework() -> None:
    frameworks = ("torch", "lightning", "transformers", "accelerate", "keras", "numpy")
    script = (
        "import sys, trackhook, trackhook.integrations\n"
        f"print(*(m for m in {frameworks!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == []


@pytest.mark.parametrize(
    ("module", "blocked", "install"),
    [
        ("lightning", "lightning", "pip install lightning"),
        ("transformers", "transformers", "pip install transformers"),
        ("accelerate", "accelerate", "pip install accelerate"),
        ("keras", "keras", "pip install keras"),
    ],
)
def test_a_missing_framework_is_an_error_naming_the_package_to_install(
    module: str, blocked: str, install: str
) -> None:
    script = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from trackhook.errors import TrackhookError\n"
        f"try:\n    import trackhook.integrations.{module}\n"
        "except TrackhookError as error:\n    print(isinstance(error, ImportError), error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.startswith("True ")
    assert install in result.stdout
    assert f"trackhook[{blocked}]" in result.stdout


def test_a_value_the_core_refuses_is_left_out_with_a_warning_and_the_others_tracked() -> None:

    training = TrainingRun("lenient", "", recording_config(), "a framework")
    with recording() as recorder, pytest.warns(TrackhookWarning, match="a framework handed"):
        training.track_metrics(3, {"": 1.0, "loss": np.float32(0.5)})
        training.close("SUCCESS")
    assert recorder.metrics("loss") == {3: 0.5}


def test_a_hyperparameter_named_step_is_left_out_with_a_warning() -> None:

    training = TrainingRun("named-step", "", recording_config(), "a framework")
    with recording() as recorder, pytest.warns(TrackhookWarning, match="'step' was not tracked"):
        training.track_params({"step": 5, "learning_rate": 0.1})
        training.close("SUCCESS")
    assert recorder.params() == {"learning_rate": 0.1}
