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


def test_a_variable_that_cannot_be_tracked_is_skipped_with_a_warning_and_the_run_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKHOOK_TRACK_bad", '{"": 1}')
    monkeypatch.setenv("TRACKHOOK_TRACK_good", "1")
    with pytest.warns(trackhook.TrackhookWarning, match="TRACKHOOK_TRACK_bad"):
        with trackhook.start_run() as run:
            pass
    assert run.status == "SUCCESS"
    assert run.user_defined_metrics == {"good": 1}


def test_huge_digit_strings_stay_strings() -> None:
    assert convert("9" * 5000) == "9" * 5000


def test_variables_tracked_by_track_env_are_not_tracked_again_at_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trackhook.testing import recording

    from .conftest import recording_config

    monkeypatch.setenv("TRACKHOOK_TRACK_answer", "42")
    with recording() as recorder, trackhook.start_run(config=recording_config()):
        trackhook.track_env()
    assert [m.key for m in recorder.metric_records()] == ["answer"]
