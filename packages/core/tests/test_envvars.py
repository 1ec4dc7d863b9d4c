"""TRACKHOOK_TRACK_* variables: steps, keys and the conversion of their string values."""

from __future__ import annotations

import pytest

import trackhook
from trackhook.envvars import convert, tracked_variables


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-3", -3),
        ("42.0", 42.0),
        ("1e-3", 0.001),
        (".5", 0.5),
        ('{"ham": "world"}', {"ham": "world"}),
        ("[1, 2]", [1, 2]),
        ("true", "true"),
        ("False", "False"),
        ("hello", "hello"),
        ("{not json", "{not json"),
        ("nan", "nan"),
    ],
)
def test_values_are_converted_without_booleans(text: str, value: object) -> None:
    assert convert(text) == value
    assert type(convert(text)) is type(value)


def test_a_final_step_suffix_gives_the_step_and_keys_keep_their_case() -> None:
    found = tracked_variables(
        {
            "TRACKHOOK_TRACK_Loss_STEP_3": "0.5",
            "TRACKHOOK_TRACK_a_STEP_b": "x",
            "TRACKHOOK_TRACK_x_STEP_1_STEP_2": "7",
            "TRACKHOOK_TRACK_": "ignored",
            "OTHER": "ignored",
        }
    )
    assert found == {3: {"Loss": 0.5}, 0: {"a_STEP_b": "x"}, 2: {"x_STEP_1": 7}}


def test_track_env_tracks_the_given_mapping_in_the_active_run() -> None:
    with trackhook.start_run() as run:
        trackhook.track_env({"TRACKHOOK_TRACK_answer_STEP_1": "42", "TRACKHOOK_TRACK_ok": "true"})
    assert run.user_defined_metrics == {"answer": {"1": 42}, "ok": "true"}


def test_variables_set_during_the_run_are_collected_at_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trackhook.start_run() as run:
        monkeypatch.setenv("TRACKHOOK_TRACK_accuracy_STEP_2", "0.9")
    assert run.user_defined_metrics == {"accuracy": {"2": 0.9}}
