"""Declared tracker limits: param keys, renaming, truncation, batch sizes, server rejections."""

from __future__ import annotations

from typing import Any

import pytest

import trackhook
from trackhook.limits import TRUNCATION_MARK, TrackerLimits, is_normal_path
from trackhook.testing import RecordingTracker, recording

from .conftest import recording_config

MLFLOW_LIKE = TrackerLimits(
    key_chars=r"[/\w.\- ]",
    max_key_length=250,
    max_param_length=60,
    param_key="{key}_{step}",
    max_metrics_per_batch=3,
    max_params_per_batch=2,
    max_values_per_batch=4,
)


class Limited(RecordingTracker):
    limits = MLFLOW_LIKE


def test_a_storable_key_is_never_changed() -> None:
    assert MLFLOW_LIKE.storable_key("train/loss-1.a b") == "train/loss-1.a b"


def test_a_key_with_forbidden_characters_is_renamed_with_a_hash_of_the_original() -> None:
    renamed = MLFLOW_LIKE.storable_key("acc@top:1")
    assert renamed.startswith("acc_top_1_")
    assert len(renamed) == len("acc_top_1_") + 8


def test_two_keys_that_clean_to_the_same_text_stay_distinct() -> None:
    assert MLFLOW_LIKE.storable_key("a:b") != MLFLOW_LIKE.storable_key("a;b")


def test_a_too_long_key_is_shortened_within_the_limit() -> None:
    renamed = MLFLOW_LIKE.storable_key("k" * 300)
    assert len(renamed) == 250
    assert renamed != MLFLOW_LIKE.storable_key("k" * 301)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("acc@top:1", "it holds '@', ':', and keys may hold only [/\\w.\\- ]"),
        ("k" * 251, "it has 251 characters, more than 250"),
        ("ok-key", None),
    ],
)
def test_the_reason_a_key_cannot_be_stored_is_named(key: str, reason: str | None) -> None:
    assert MLFLOW_LIKE.why_unstorable(key) == reason


def test_the_user_is_told_the_key_its_new_name_and_why() -> None:
    with (
        recording(Limited()),
        pytest.warns(trackhook.TrackhookWarning) as caught,
        trackhook.start_run(config=recording_config()),
    ):
        trackhook.track_this(**{"acc@top1": 0.5})
    (message,) = [str(w.message) for w in caught if "acc@top1" in str(w.message)]
    assert "cannot store the key 'acc@top1' (it holds '@'" in message
    assert f"stored as {MLFLOW_LIKE.storable_key('acc@top1')!r}" in message


def test_a_long_param_is_truncated_with_a_mark() -> None:
    short = MLFLOW_LIKE.fit_param_text("x" * 100)
    assert short is not None
    assert len(short) == 60
    assert short.endswith(TRUNCATION_MARK)
    assert MLFLOW_LIKE.fit_param_text("x" * 60) is None


def test_the_delivery_applies_the_declared_limits_and_counts_them() -> None:
    tracker = Limited()
    with recording(tracker), pytest.warns(trackhook.TrackhookWarning, match="'bad:key'"):
        with trackhook.start_run(config=recording_config()) as run:
            trackhook.track_this(step=4, text="y" * 80, **{"bad:key": 1.0})
    (param,) = tracker.param_records()
    assert param.key == "text_4"
    assert param.value.endswith(TRUNCATION_MARK)
    assert param.full_value == "y" * 80
    (metric,) = tracker.metric_records()
    assert metric.key.startswith("bad_key_")
    assert run.user_defined_metrics == {"text": {"4": "y" * 80}, "bad:key": {"4": 1.0}}
    import json

    (report,) = json.loads(run.run_log_path.read_text())["experiment_trackers"]
    assert report["delivery"] | {"last_error": None} == {
        "delivered": 2,
        "retried": 0,
        "renamed": 1,
        "truncated": 1,
        "undelivered": 0,
        "skipped": 0,
        "rejected": 0,
        "last_error": None,
    }


def test_batches_respect_the_declared_sizes_and_keep_every_value_once() -> None:
    tracker = Limited()
    with recording(tracker), trackhook.start_run(config=recording_config()):
        trackhook.track_this(
            **{f"m{i}": float(i) for i in range(10)}, **{f"p{i}": str(i) for i in range(5)}
        )
    batches = [c.kwargs for c in tracker.calls if c.name == "trackhook_log_batch"]
    for batch in batches:
        assert len(batch["metrics"]) <= 3
        assert len(batch["params"]) <= 2
        assert len(batch["metrics"]) + len(batch["params"]) <= 4
    assert sorted(m.key for m in tracker.metric_records()) == sorted(f"m{i}" for i in range(10))
    assert sorted(p.key for p in tracker.param_records()) == sorted(f"p{i}_0" for i in range(5))


class PickyServer(RecordingTracker):
    """Accepts parameters of at most 20 characters, although it declared 50."""

    limits = MLFLOW_LIKE

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        if any(len(str(p.value)) > 20 for p in params):
            raise trackhook.TighterLimitsRequired("param too long for server", max_param_length=20)
        super().trackhook_log_batch(run, metrics, params)


def test_a_server_rejecting_a_long_value_gets_it_truncated_to_its_real_limit() -> None:
    tracker = PickyServer()
    with recording(tracker), trackhook.start_run(config=recording_config()):
        trackhook.track_this(text="z" * 40)
    (param,) = tracker.param_records()
    assert len(param.value) <= 20
    assert param.full_value == "z" * 40


PATHS = TrackerLimits(key_chars=r"[/\w.\- ]", path_keys=True)


@pytest.mark.parametrize("key", ["a//b", "a/", "/a", "./a", "a/../b"])
def test_a_key_that_is_not_a_normal_path_is_renamed_without_slashes(key: str) -> None:
    renamed = PATHS.storable_key(key)
    assert "/" not in renamed
    assert renamed != PATHS.storable_key(key + "x")


@pytest.mark.parametrize("key", [".", "..", "...", "..hidden"])
def test_keys_of_dots_are_renamed_under_path_keys(key: str) -> None:
    assert PATHS.why_unstorable(key) is not None
    assert PATHS.storable_key(key) != key


@pytest.mark.parametrize(
    "key", ["../../x", "..", "/etc/passwd", "a/../../b", "..//..", "x/" * 200 + "..", "..\\x"]
)
def test_a_renamed_path_key_never_leads_out_of_its_folder(key: str) -> None:
    limits = TrackerLimits(key_chars=r"[/\w.\- ]", max_key_length=250, path_keys=True)
    stored = limits.storable_key(key)
    assert is_normal_path(stored)
    assert ".." not in stored.split("/")
    assert not stored.startswith(("/", ".."))
    assert limits.why_unstorable(stored) is None


def test_a_normal_path_key_is_kept() -> None:
    assert PATHS.storable_key("train/loss") == "train/loss"


def test_a_reserved_key_is_renamed_and_others_are_kept() -> None:
    limits = TrackerLimits(reserved_keys=frozenset({"_step"}))
    assert limits.storable_key("_step").startswith("_step_")
    assert limits.storable_key("step") == "step"


def test_values_are_sent_in_full_batches_whatever_the_spool_chunks() -> None:
    import threading

    gate = threading.Event()

    class Capped(RecordingTracker):
        limits = TrackerLimits(max_values_per_batch=1000)

        @trackhook.hookimpl
        def trackhook_open_run(self, run: Any) -> None:
            gate.wait(30)  # every value is spooled before the first batch is read

    tracker = Capped()
    with recording(tracker), trackhook.start_run(config=recording_config()):
        for step in range(2000):
            trackhook.track_this(step=step, loss=0.5)
        gate.set()
    sizes = [len(c.kwargs["metrics"]) for c in tracker.calls if c.name == "trackhook_log_batch"]
    assert sizes == [1000, 1000]
