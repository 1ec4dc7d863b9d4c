"""The run log: runnable's examples reproduced, every value type, strict JSON."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

import trackhook
from trackhook.testing import recording

from .conftest import recording_config


class Eggs(BaseModel):
    ham: str


class Aliased(BaseModel):
    learning_rate: float = Field(alias="learningRate")


def read_log(run: trackhook.Run) -> dict[str, object]:
    return json.loads(run.run_log_path.read_text())


def test_runnable_api_example_gives_its_user_defined_metrics() -> None:
    with trackhook.start_run(run_id="clean-ride-1048") as run:
        trackhook.track_this(spam="hello", eggs=Eggs(ham="world"), answer=42.0, is_it_true=False)
    assert read_log(run)["user_defined_metrics"] == {
        "spam": "hello",
        "eggs": {"ham": "world"},
        "answer": 42.0,
        "is_it_true": False,
    }


def test_runnable_incremental_example_gives_its_user_defined_metrics() -> None:
    with trackhook.start_run(run_id="blocking-stonebraker-1545") as run:
        trackhook.track_this(spam="hello", eggs=Eggs(ham="world"), answer=42.0, is_it_true=False)
        trackhook.track_this(step=1, spam="hey", eggs=Eggs(ham="universe"))
    assert read_log(run)["user_defined_metrics"] == {
        "spam": {"0": "hello", "1": "hey"},
        "eggs": {"0": {"ham": "world"}, "1": {"ham": "universe"}},
        "answer": 42.0,
        "is_it_true": False,
    }


def test_runnable_shell_example_tracks_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKHOOK_TRACK_spam", "hello")
    monkeypatch.setenv("TRACKHOOK_TRACK_eggs", '{"ham": "world"}')
    monkeypatch.setenv("TRACKHOOK_TRACK_answer", "42.0")
    with trackhook.start_run(run_id="blazing-colden-0544") as run:
        pass
    assert read_log(run)["user_defined_metrics"] == {
        "spam": "hello",
        "eggs": {"ham": "world"},
        "answer": 42.0,
    }


def test_run_log_records_id_tag_status_times_and_trackers() -> None:
    with trackhook.start_run(run_id="r", tag="baseline") as run:
        trackhook.track_this(x=1)
    log = read_log(run)
    assert run.run_log_path == Path(".run_log_store/r.json")
    assert (log["run_id"], log["tag"], log["status"]) == ("r", "baseline", "SUCCESS")
    assert log["start_time"] <= log["end_time"]
    assert [t["type"] for t in log["experiment_trackers"]] == ["do-nothing"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (2.5, 2.5),
        ("text", "text"),
        (True, True),
        (None, None),
        ([1, "a", None], [1, "a", None]),
        ((1, 2), [1, 2]),
        ({"a": {"b": 1}}, {"a": {"b": 1}}),
        ({1: "one"}, {"1": "one"}),
        (Aliased(learningRate=0.1), {"learningRate": 0.1}),
    ],
)
def test_every_value_type_is_recorded(value: object, expected: object) -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(value=value)
    assert read_log(run)["user_defined_metrics"] == {"value": expected}


def test_numpy_like_numbers_become_plain_numbers() -> None:
    import fractions

    with trackhook.start_run() as run:
        trackhook.track_this(ratio=fractions.Fraction(1, 4))
    assert run.user_defined_metrics == {"ratio": 0.25}


def test_same_key_at_same_step_replaces_the_value() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(step=2, loss=1.0)
        trackhook.track_this(step=2, loss=0.5)
    assert run.user_defined_metrics == {"loss": {"2": 0.5}}


def test_nan_and_infinities_are_written_as_strict_json() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(nan=math.nan, up=math.inf, down=-math.inf, nested={"n": math.nan})
    text = run.run_log_path.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    assert json.loads(text)["user_defined_metrics"] == {
        "nan": "NaN",
        "up": "Infinity",
        "down": "-Infinity",
        "nested": {"n": "NaN"},
    }


def test_generated_run_ids_are_readable_and_unique() -> None:
    with trackhook.start_run() as first, trackhook.start_run() as second:
        pass
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", first.run_id)
    assert first.run_id != second.run_id


def test_a_failing_block_closes_the_run_as_fail_and_still_raises() -> None:
    with pytest.raises(ZeroDivisionError), trackhook.start_run() as run:
        trackhook.track_this(x=1)
        _ = 1 / 0
    assert read_log(run)["status"] == "FAIL"
    assert read_log(run)["user_defined_metrics"] == {"x": 1}


def test_run_log_store_folder_is_configurable(tmp_path: Path) -> None:
    with trackhook.start_run(run_id="r", config={"run_log_store": str(tmp_path / "logs")}):
        trackhook.track_this(x=1)
    assert (tmp_path / "logs" / "r.json").is_file()


def test_a_resumed_run_keeps_its_first_start_all_values_and_the_sum_of_its_counts() -> None:
    with recording(), trackhook.start_run("resumed", config=recording_config()) as first:
        trackhook.track_this(step=1, loss=0.5)
    started = read_log(first)["start_time"]
    with recording(), trackhook.start_run("resumed", config=recording_config()) as second:
        trackhook.track_this(step=2, loss=0.25, note="again")
    log = read_log(second)
    assert log["start_time"] == started
    assert len(log["resumed_at"]) == 1  # type: ignore[arg-type]
    assert log["user_defined_metrics"] == {"loss": {"1": 0.5, "2": 0.25}, "note": {"2": "again"}}
    (tracker,) = log["experiment_trackers"]  # type: ignore[misc]
    assert tracker["delivery"]["delivered"] == 3


def test_building_a_run_touches_no_file_and_starts_no_thread_until_it_opens(tmp_path: Path) -> None:
    import threading

    from trackhook.config import load_config
    from trackhook.run import Run

    store = tmp_path / "store"
    loaded = load_config({"experiment_tracker": {"type": "recording"}, "run_log_store": str(store)})
    threads = set(threading.enumerate())
    with recording() as recorder:
        run = Run("built", "", loaded, owner=True)
        assert not store.exists()
        assert set(threading.enumerate()) == threads
        assert recorder.statuses() == []
        run.open()
        run.track(1, {"loss": 0.5})
        run.close("SUCCESS")
    assert json.loads((store / "built.json").read_text())["user_defined_metrics"] == {
        "loss": {"1": 0.5}
    }
    assert recorder.statuses() == ["SUCCESS"]
