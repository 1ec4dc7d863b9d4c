"""The plugin contract: hooks, fan-out, isolation, validation, client context."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

import trackhook
from trackhook.registry import registered
from trackhook.sync import sync_runs
from trackhook.testing import PerValueRecordingTracker, RecordingTracker, recording

from .conftest import recording_config


class Exploding:
    """A tracker whose every hook raises."""

    @trackhook.hookimpl
    def trackhook_open_run(self, run: trackhook.RunInfo) -> None:
        raise ConnectionError("tracker server unreachable")

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: trackhook.RunInfo, metrics: Any, params: Any) -> None:
        raise ConnectionError("tracker server unreachable")


def test_hooks_are_called_in_order_open_batch_close() -> None:
    with recording() as recorder, trackhook.start_run("r", "exp", config=recording_config()):
        trackhook.track_this(step=3, loss=0.5, optimiser="adam")
    assert recorder.names() == ["trackhook_open_run", "trackhook_log_batch", "trackhook_close_run"]
    opened = recorder.calls[0].kwargs["run"]
    assert (opened.run_id, opened.tag) == ("r", "exp")
    assert recorder.statuses() == ["SUCCESS"]


def test_numbers_become_metrics_and_everything_else_params_with_dotted_keys() -> None:
    with recording() as recorder, trackhook.start_run(config=recording_config()):
        trackhook.track_this(
            step=2,
            loss=0.5,
            epochs=3,
            flag=True,
            name="x",
            none=None,
            ids=[1, 2],
            eggs={"ham": {"spam": 1.5, "text": "t"}},
        )
    assert {(m.key, m.value, m.step) for m in recorder.metric_records()} == {
        ("loss", 0.5, 2),
        ("epochs", 3, 2),
        ("eggs.ham.spam", 1.5, 2),
    }
    assert recorder.params() == {
        "flag": True,
        "name": "x",
        "none": None,
        "ids": [1, 2],
        "eggs.ham.text": "t",
    }
    assert {p.step for p in recorder.param_records()} == {2}


def test_metric_records_carry_the_time_they_were_tracked() -> None:
    import time

    before = time.time()
    with recording() as recorder, trackhook.start_run(config=recording_config()):
        trackhook.track_this(loss=1.0)
    (record,) = recorder.metric_records()
    assert before <= record.timestamp <= time.time()


def test_a_tracker_without_the_batch_hook_gets_one_call_per_value() -> None:
    tracker = PerValueRecordingTracker()
    with recording(tracker), trackhook.start_run(config=recording_config()):
        trackhook.track_this(step=1, loss=0.5, name="x")
    assert tracker.names() == [
        "trackhook_open_run",
        "trackhook_log_metric",
        "trackhook_log_param",
        "trackhook_close_run",
    ]
    assert tracker.metrics("loss") == {1: 0.5}
    assert tracker.params() == {"name": "x"}


def test_fan_out_sends_every_value_to_every_tracker() -> None:
    first, second = RecordingTracker(), RecordingTracker()
    with recording(first, "first"), recording(second, "second"):
        with trackhook.start_run(config=recording_config("first", "second")) as run:
            for step in range(100):
                trackhook.track_this(step=step, loss=1 / (step + 1))
    assert run.trackers == ["first", "second"]
    assert first.metrics("loss") == second.metrics("loss")
    assert len(first.metrics("loss")) == 100


def test_a_raising_tracker_stops_neither_the_others_nor_the_run_log() -> None:
    with (
        recording() as recorder,
        registered("exploding", Exploding),
        pytest.warns(trackhook.TrackhookWarning) as caught,
        trackhook.start_run(
            config=recording_config("exploding", "recording", flush_timeout=0.2)
        ) as run,
    ):
        trackhook.track_this(loss=0.5)
    assert recorder.metrics("loss") == {0: 0.5}
    assert run.user_defined_metrics == {"loss": 0.5}
    failures = [str(w.message) for w in caught if "failed" in str(w.message)]
    assert len(failures) == 1, "warns once, not once per retry"
    assert "'exploding'" in failures[0]
    assert "tracker server unreachable" in failures[0]
    undelivered = [str(w.message) for w in caught if "could not deliver" in str(w.message)]
    assert "trackhook sync" in undelivered[0]


def test_on_error_raise_propagates_the_trackers_failure() -> None:
    config = {
        "experiment_tracker": {"type": "exploding", "on_error": "raise"},
        "delivery": {"interval": 0.01},
    }
    with (
        registered("exploding", Exploding),
        pytest.raises(trackhook.TrackerDeliveryError) as caught,
    ):
        with trackhook.start_run(config=config) as run:
            trackhook.track_this(loss=0.5)
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert "'exploding'" in str(caught.value)
    assert run.run_log_path.is_file(), "the run log is still written"


class Misspelled:
    @trackhook.hookimpl
    def trackhook_log_metrc(self, key: str) -> None:
        pass


def test_a_misspelled_hook_is_rejected_with_the_plugins_name() -> None:
    config = {"experiment_tracker": {"type": "typo", "on_error": "raise"}}
    with registered("typo", Misspelled), pytest.raises(trackhook.TrackerLoadError) as caught:
        trackhook.start_run(config=config).__enter__()
    assert "trackhook_log_metrc" in str(caught.value)
    assert "'typo'" in str(caught.value)


def test_a_plugin_breaking_the_contract_is_left_out_and_synced_once_fixed(tmp_path: Any) -> None:
    # The promise: a bug in a plugin does not fail the user's code nor stop the other trackers.
    config = {
        **recording_config("typo", "recording"),
        "run_log_store": str(tmp_path / ".run_log_store"),
    }
    with registered("typo", Misspelled), recording() as recorder:
        with pytest.warns(trackhook.TrackhookWarning) as caught:
            with trackhook.start_run("broken-plugin", config=config) as run:
                trackhook.track_this(step=1, loss=0.5)
    messages = " ".join(str(warning.message) for warning in caught)
    assert "trackhook_log_metrc" in messages
    assert "the run goes on without tracker 'typo'" in messages
    assert "trackhook sync broken-plugin" in messages
    assert recorder.metrics("loss") == {1: 0.5}, "the other tracker got its values"
    (not_loaded,) = json.loads(run.run_log_path.read_text())["trackers_not_loaded"]
    assert (not_loaded["name"], not_loaded["type"]) == ("typo", "typo")
    assert "trackhook_log_metrc" in not_loaded["error"]

    fixed = RecordingTracker()
    with registered("typo", lambda: fixed):
        (result,) = sync_runs(["broken-plugin"], {**config, **recording_config("typo")})
    assert result.delivered == {"typo": 1}
    assert fixed.metrics("loss") == {1: 0.5}
    synced = json.loads(run.run_log_path.read_text())
    assert synced["trackers_not_loaded"] == []
    assert {
        item["name"]: item["delivery"]["delivered"] for item in synced["experiment_trackers"]
    } == {
        "recording": 1,
        "typo": 1,
    }


class ForgotTheMarker:
    @trackhook.hookimpl
    def trackhook_log_param(self, key: str, value: object) -> None:
        pass

    def trackhook_log_metric(self, key: str, value: float) -> None:
        pass


def test_a_hook_without_the_hookimpl_marker_is_rejected_naming_it() -> None:
    config = {"experiment_tracker": {"type": "forgot", "on_error": "raise"}}
    with registered("forgot", ForgotTheMarker), pytest.raises(trackhook.TrackerLoadError) as caught:
        trackhook.start_run(config=config).__enter__()
    message = str(caught.value)
    assert "'forgot'" in message
    assert "trackhook_log_metric of ForgotTheMarker is not marked with @trackhook.hookimpl" in (
        message
    )


class ParamsOnly:
    def __init__(self) -> None:
        self.params: list[tuple[str, object]] = []

    @trackhook.hookimpl
    def trackhook_log_param(self, key: str, value: object) -> None:
        self.params.append((key, value))


def test_a_tracker_without_a_metric_hook_is_told_and_its_metrics_are_counted_skipped() -> None:
    tracker = ParamsOnly()
    config = {"experiment_tracker": {"type": "params-only"}}
    with (
        registered("params-only", lambda: tracker),
        pytest.warns(trackhook.TrackhookWarning, match="neither trackhook_log_metric"),
        trackhook.start_run(config=config) as run,
    ):
        trackhook.track_this(loss=0.5, accuracy=0.9, optimiser="adam")
    assert tracker.params == [("optimiser", "adam")]
    (report,) = json.loads(run.run_log_path.read_text())["experiment_trackers"]
    assert (report["delivery"]["delivered"], report["delivery"]["skipped"]) == (1, 2)
    assert run.user_defined_metrics["loss"] == 0.5, "the run log keeps every value"


class WrongArguments:
    @trackhook.hookimpl
    def trackhook_log_metric(self, key: str, colour: str) -> None:
        pass


def test_a_hook_with_arguments_the_spec_lacks_is_rejected() -> None:
    with (
        registered("wrong", WrongArguments),
        pytest.raises(trackhook.TrackerLoadError, match="colour"),
    ):
        config = {"experiment_tracker": {"type": "wrong", "on_error": "raise"}}
        trackhook.start_run(config=config).__enter__()


def test_client_context_yields_the_trackers_native_client() -> None:
    with recording() as recorder, trackhook.start_run(config=recording_config()):
        with trackhook.get_experiment_tracker_context() as client:
            assert client is recorder


def test_client_context_without_a_run_or_tracker_is_a_null_context() -> None:
    with trackhook.get_experiment_tracker_context() as client:
        assert client is None
    with trackhook.start_run(), trackhook.get_experiment_tracker_context() as client:
        assert client is None


def test_client_context_with_several_trackers_needs_a_name() -> None:
    first, second = RecordingTracker(), RecordingTracker()
    with recording(first, "first"), recording(second, "second"):
        with trackhook.start_run(config=recording_config("first", "second")):
            with pytest.raises(trackhook.TrackhookError, match="name the one"):
                trackhook.get_experiment_tracker_context()
            with trackhook.get_experiment_tracker_context("second") as client:
                assert client is second


def test_the_do_nothing_tracker_is_registered_through_the_same_path() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(x=1)
    assert run.trackers == ["do-nothing"]


def test_warnings_do_not_mention_credentials() -> None:
    class Leaky:
        @trackhook.hookimpl
        def trackhook_log_batch(self, metrics: Any) -> None:
            raise ConnectionError("cannot reach https://bob:pa55word@mlflow.internal")

    with warnings.catch_warnings(record=True) as caught, registered("leaky", Leaky):
        warnings.simplefilter("always")
        with trackhook.start_run(config=recording_config("leaky", flush_timeout=0.1)) as run:
            trackhook.track_this(x=1)
    assert caught
    assert all("pa55word" not in str(w.message) for w in caught)
    assert "pa55word" not in run.run_log_path.read_text()


def test_values_of_a_tracker_that_never_opened_are_reported_undelivered() -> None:
    import json

    with warnings.catch_warnings(record=True) as caught, registered("exploding", Exploding):
        warnings.simplefilter("always")
        with trackhook.start_run(config=recording_config("exploding", flush_timeout=0.2)) as run:
            for step in range(300):
                trackhook.track_this(step=step, loss=1.0)
    (report,) = json.loads(run.run_log_path.read_text())["experiment_trackers"]
    assert report["delivery"]["undelivered"] == 300
    assert any("could not deliver 300 values" in str(w.message) for w in caught)


def test_secret_query_parameters_never_reach_the_run_log() -> None:
    from trackhook.redaction import redact_text

    redacted = redact_text("https://host/api?token=abc&run=1&api_key=zz")
    assert redacted == "https://host/api?token=***&run=1&api_key=***"


class FailsOnce(PerValueRecordingTracker):
    """A per-value tracker whose fourth call fails once."""

    calls_made = 0

    @trackhook.hookimpl
    def trackhook_log_metric(self, run: Any, key: str, value: float, step: int) -> None:
        FailsOnce.calls_made += 1
        if FailsOnce.calls_made == 4:
            raise ConnectionError("blip")
        super().trackhook_log_metric(run, key, value, step)


def test_a_per_value_tracker_failing_mid_batch_gets_no_value_twice() -> None:
    tracker = FailsOnce()
    config = recording_config(max_backoff=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with recording(tracker), trackhook.start_run(config=config):
            trackhook.track_this(a=1, b=2, c=3, d=4, e=5)
    assert [m.key for m in tracker.metric_records()] == ["a", "b", "c", "d", "e"]


def test_warnings_as_errors_do_not_stop_delivery() -> None:
    tracker = FailsOnce()
    FailsOnce.calls_made = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with recording(tracker), trackhook.start_run(config=recording_config(max_backoff=0.05)):
            trackhook.track_this(a=1, b=2, c=3, d=4, e=5)
    assert len(tracker.metric_records()) == 5


class NoSettings:
    """Written like SPEC.md's MyTracker, ``cls(config)``, but without a ``config_model``."""

    built_with: list[object] = []

    def __init__(self, config: object) -> None:
        self.built_with.append(config)
        self.values: list[tuple[str, float]] = []

    @trackhook.hookimpl
    def trackhook_log_batch(self, metrics: list[trackhook.MetricRecord]) -> None:
        self.values.extend((metric.key, metric.value) for metric in metrics)


def test_a_tracker_without_a_config_model_is_built_as_cls_config_with_an_empty_config() -> None:
    NoSettings.built_with = []
    with registered("plain", NoSettings), trackhook.start_run(config=recording_config("plain")):
        trackhook.track_this(x=1.0)
    assert NoSettings.built_with == [{}]


def test_a_tracker_without_a_config_model_may_take_no_argument() -> None:
    class NoArgument:
        def __init__(self) -> None:
            self.built = True

    with (
        registered("bare", NoArgument),
        trackhook.start_run(config=recording_config("bare")) as run,
    ):
        pass
    assert run.trackers == ["bare"]


class BrokenConstructor:
    def __init__(self) -> None:
        raise RuntimeError("plugin bug in __init__")


def test_a_tracker_whose_constructor_fails_is_left_out_with_a_warning() -> None:
    config = recording_config("broken", "recording")
    with registered("broken", BrokenConstructor), recording() as recorder:
        with pytest.warns(trackhook.TrackhookWarning, match="plugin bug in __init__"):
            with trackhook.start_run(config=config) as run:
                trackhook.track_this(x=1.0)
    assert run.trackers == ["recording"]
    assert recorder.metrics("x") == {0: 1.0}


def test_a_tracker_whose_constructor_fails_raises_with_on_error_raise() -> None:
    config = {"experiment_tracker": {"type": "broken", "on_error": "raise"}}
    with registered("broken", BrokenConstructor), pytest.raises(trackhook.TrackerLoadError):
        trackhook.start_run(config=config).__enter__()


def test_the_delivery_error_and_the_trackers_facts_hide_credentials() -> None:
    class Leaky(RecordingTracker):
        @trackhook.hookimpl
        def trackhook_open_run(self, run: Any) -> dict[str, str]:
            return {"endpoint": "https://alice:s3cr3t@host/api", "api_token": "T0KEN"}

        @trackhook.hookimpl
        def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
            raise ConnectionError("cannot reach https://alice:s3cr3t@host/api?token=abc")

    config = {"experiment_tracker": {"type": "leaky", "on_error": "raise"},
              "delivery": {"interval": 0.01}}  # fmt: skip
    with registered("leaky", Leaky), pytest.raises(trackhook.TrackerDeliveryError) as caught:
        with trackhook.start_run(config=config) as run:
            trackhook.track_this(x=1)
    assert "s3cr3t" not in str(caught.value)
    assert "abc" not in str(caught.value)
    log = run.run_log_path.read_text()
    assert "s3cr3t" not in log
    assert "T0KEN" not in log


def test_runs_opened_in_several_threads_each_get_their_own_values() -> None:
    import threading

    barrier = threading.Barrier(2)
    runs: dict[str, trackhook.Run] = {}

    def trial(name: str) -> None:
        with trackhook.start_run(run_id=name) as run:
            barrier.wait(10)  # both runs open at once
            trackhook.track_this(lr=name)
            barrier.wait(10)
        runs[name] = run

    threads = [threading.Thread(target=trial, args=(name,)) for name in ("trialA", "trialB")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs["trialA"].user_defined_metrics == {"lr": "trialA"}
    assert runs["trialB"].user_defined_metrics == {"lr": "trialB"}
    assert "TRACKHOOK_RUN_ID" not in __import__("os").environ


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://alice:s3cret@mlflow.example:5000", "http://***@mlflow.example:5000"),
        ("https://token@host/path", "https://***@host/path"),
        ("http://h:5000/?x=1&access_token=abc", "http://h:5000/?x=1&access_token=***"),
        ("postgresql://bob:p@ss@db/x", "postgresql://***@db/x"),
        ("https://bob:pa/ss@host/p", "https://***@host/p"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("file:///tmp/mlruns", "file:///tmp/mlruns"),
        ("databricks", "databricks"),
    ],
)
def test_uris_are_shown_without_credentials(uri: str, shown: str) -> None:
    from trackhook.redaction import redact_text

    assert redact_text(uri) == shown
