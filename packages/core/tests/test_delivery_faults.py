"""Exactly once under faults: closes that run out of time, refusals, odd exceptions, cold starts.

Real threads, real files, recording trackers; waits are bounded generously, nothing is timed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook.cli import main
from trackhook.store import RunStore, SpoolPosition, UnsafeStorePath
from trackhook.sync import sync_runs
from trackhook.testing import RecordingTracker, recording

from .conftest import recording_config

pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")


def delivery_of(run: trackhook.Run | str) -> dict[str, Any]:
    """The first tracker's delivery report in the run log."""
    path = Path(".run_log_store") / f"{run}.json" if isinstance(run, str) else run.run_log_path
    document: dict[str, Any] = json.loads(path.read_text())
    return document["experiment_trackers"][0]["delivery"]  # type: ignore[no-any-return]


def received(recorder: RecordingTracker) -> Counter[tuple[str, int]]:
    return Counter((record.key, record.step) for record in recorder.metric_records())


# -- item 3: exactly once inside a line ---------------------------------------------------------


class SlowSmallBatches(RecordingTracker):
    """Takes 100 values a call, slowly: a close with a short timeout stops it part-way."""

    limits = trackhook.TrackerLimits(max_values_per_batch=100)
    delay = 0.02

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        time.sleep(self.delay)
        super().trackhook_log_batch(run, metrics, params)


def test_a_call_larger_than_a_batch_cut_off_by_the_close_arrives_once_after_sync() -> None:
    tracker = SlowSmallBatches()
    config = recording_config(flush_timeout=0.2, patience=0.0)
    with recording(tracker):
        with trackhook.start_run("wide", config=config) as run:
            trackhook.track_this(step=1, **{f"k{i}": float(i) for i in range(5000)})
        left_at_close = delivery_of(run)["undelivered"]
        tracker.delay = 0.0
        (result,) = sync_runs(["wide"], config)
    assert received(tracker) == Counter((f"k{i}", 1) for i in range(5000))
    assert 0 < left_at_close < 5000, "the close stopped part-way through the one line"
    assert result.delivered == {"recording": left_at_close}
    assert tracker.statuses() == ["SUCCESS"]


class FlakyPerValue:
    """A minimal per-value tracker (only ``trackhook_log_metric``) failing 2% of its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.random = random.Random(20261201)
        self.delay = 0.001
        self.closed: list[str] = []

    @trackhook.hookimpl
    def trackhook_log_metric(self, key: str, value: float, step: int) -> None:
        if self.random.random() < 0.02:
            raise ConnectionError("the tracker dropped the connection")
        time.sleep(self.delay)
        self.calls.append((key, step))

    @trackhook.hookimpl
    def trackhook_close_run(self, status: str) -> None:
        self.closed.append(status)


def test_a_per_value_tracker_failing_at_random_gets_each_value_once_after_sync() -> None:
    tracker = FlakyPerValue()
    config = recording_config("flaky", flush_timeout=0.5, patience=0.0, max_backoff=0.01)
    with recording(tracker, "flaky"):  # type: ignore[arg-type]
        with trackhook.start_run("flaky-run", config=config):
            for step in range(300):
                trackhook.track_this(step=step, **{f"m{i}": float(i) for i in range(10)})
        tracker.delay = 0.0
        (result,) = sync_runs(["flaky-run"], config)
    assert result.undelivered == {"flaky": 0}
    assert Counter(tracker.calls) == Counter(
        (f"m{i}", step) for step in range(300) for i in range(10)
    )
    assert tracker.closed == ["SUCCESS"]


def test_a_position_file_of_format_one_reads_as_the_end_of_a_line(tmp_path: Path) -> None:
    positions = RunStore(tmp_path).positions("r", "t")
    spool = tmp_path / "r" / "spool" / "host-1-ab.jsonl"
    positions.save(spool, SpoolPosition(0))  # makes the folder
    (positions.folder / "host-1-ab.offset").write_text("1234")
    assert positions.position(spool) == SpoolPosition(1234, 0)
    positions.save(spool, SpoolPosition(1234, 7))
    assert positions.position(spool) == SpoolPosition(1234, 7)


# -- item 4: values a tracker refuses -----------------------------------------------------------


class Refusing(RecordingTracker):
    """Refuses every batch holding a key that starts with ``bad``; optionally down for a while."""

    outage_calls = 0

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        if self.outage_calls:
            self.outage_calls -= 1
            raise ConnectionError("server unavailable")
        refused = [record.key for record in [*metrics, *params] if record.key.startswith("bad")]
        if refused:
            raise trackhook.ValuesRejected("Invalid value: out of range")
        super().trackhook_log_batch(run, metrics, params)


def track_with_three_refused_values() -> set[tuple[str, int]]:
    """Track 2,003 values, three of them refused (one inside a wide line); return the others."""
    wide = {f"w{i}": float(i) for i in range(1500)}
    wide["bad_wide"] = 1.0
    trackhook.track_this(step=0, **wide)
    for step in range(1, 501):
        extra = {"bad_step": 2.0**63} if step in (100, 400) else {}
        trackhook.track_this(step=step, loss=float(step), **extra)
    return {(key, 0) for key in wide if key != "bad_wide"} | {("loss", s) for s in range(1, 501)}


def test_values_a_tracker_refuses_are_set_aside_counted_and_never_offered_again() -> None:
    tracker = Refusing()
    with recording(tracker), pytest.warns(trackhook.TrackhookWarning, match="'bad_wide'"):
        with trackhook.start_run("refused", config=recording_config()) as run:
            expected = track_with_three_refused_values()
    assert received(tracker) == Counter(expected)
    report = delivery_of(run)
    assert (report["delivered"], report["rejected"], report["undelivered"]) == (2000, 3, 0)
    assert report["rejected_reasons"] == {"Invalid value: out of range": 3}
    assert report["rejected_keys"] == ["bad_wide", "bad_step"]
    assert tracker.statuses() == ["SUCCESS"]
    calls = len(tracker.calls)
    with recording(tracker):
        (result,) = sync_runs(["refused"], recording_config())
    assert result.delivered == {"recording": 0}
    assert len(tracker.calls) == calls, "nothing offered again, the refused values included"
    assert delivery_of("refused")["rejected_reasons"] == {"Invalid value: out of range": 3}


def test_an_outage_is_retried_and_never_counted_as_a_rejection() -> None:
    tracker = Refusing()
    tracker.outage_calls = 5
    config = recording_config(max_backoff=0.05)
    with recording(tracker), trackhook.start_run("outage", config=config) as run:
        expected = track_with_three_refused_values()
    assert received(tracker) == Counter(expected)
    report = delivery_of(run)
    assert (report["rejected"], report["undelivered"]) == (3, 0)
    assert report["retried"] >= 5


def test_show_lists_what_each_tracker_rejected_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    with recording(Refusing()), trackhook.start_run("shown", config=recording_config()):
        track_with_three_refused_values()
    capsys.readouterr()
    assert main(["show", "shown", "--plain"]) == 0
    out = capsys.readouterr().out
    assert "2000 delivered, 0 undelivered, 3 rejected" in out
    assert "rejected 3: Invalid value: out of range" in out
    assert "rejected keys: bad_wide, bad_step" in out


# -- item 6: SystemExit and KeyboardInterrupt from a hook ---------------------------------------


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt])
def test_a_hook_raising_system_exit_or_keyboard_interrupt_is_retried_like_any_failure(
    exception: type[BaseException],
) -> None:
    class Exiting(RecordingTracker):
        failures = 3

        @trackhook.hookimpl
        def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise exception("from inside the plugin")
            super().trackhook_log_batch(run, metrics, params)

    tracker = Exiting()
    config = recording_config(max_backoff=0.05)
    with recording(tracker), pytest.warns(trackhook.TrackhookWarning, match=exception.__name__):
        with trackhook.start_run("exiting", config=config) as run:
            for step in range(101):
                trackhook.track_this(step=step, loss=float(step))
    assert received(tracker) == Counter(("loss", step) for step in range(101))
    report = delivery_of(run)
    assert (report["delivered"], report["undelivered"], report["retried"]) == (101, 0, 3)
    assert tracker.statuses() == ["SUCCESS"]


class DownAtFirst(RecordingTracker):
    """Down for its first ``failures`` batches, then works."""

    failures = 3

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server unavailable")
        super().trackhook_log_batch(run, metrics, params)


def test_an_error_the_tracker_recovered_from_is_recorded_as_recovered_not_as_last_error() -> None:
    config = recording_config(max_backoff=0.05)
    with recording(DownAtFirst()), trackhook.start_run("recovered", config=config) as run:
        for step in range(101):
            trackhook.track_this(step=step, loss=float(step))
    report = delivery_of(run)
    assert (report["delivered"], report["undelivered"], report["retried"]) == (101, 0, 3)
    assert report["last_error"] is None, "the tracker works: it is not failing"
    assert report["recovered_error"] == "ConnectionError: server unavailable"


def test_a_sync_while_the_owner_still_delivers_does_not_send_the_user_to_sync() -> None:
    class Down(RecordingTracker):
        @trackhook.hookimpl
        def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
            raise ConnectionError("server unavailable")

    config = recording_config(flush_timeout=0.5, patience=0.0, max_backoff=0.05)
    with recording(Down()), trackhook.start_run("live", config=config) as run:
        for step in range(101):
            trackhook.track_this(step=step, loss=float(step))
        run.flush()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (result,) = sync_runs(["live"], config, timeout=0.5)
    assert result.undelivered == {"recording": 101}, "the sync could deliver nothing"
    told = [str(warning.message) for warning in caught]
    assert not [text for text in told if "trackhook sync" in text], told


# -- item 8: a cold tracker at close ---------------------------------------------------------------


class SlowToOpen(RecordingTracker):
    """Opens the run only after ``release`` (a cold import, a database being created)."""

    def __init__(self, opens_after: float) -> None:
        super().__init__()
        self.release = threading.Event()
        self.opens_after = opens_after

    @trackhook.hookimpl
    def trackhook_open_run(self, run: trackhook.RunInfo) -> None:
        self.release.wait(self.opens_after)
        super().trackhook_open_run(run)


def test_a_tracker_still_opening_at_close_gets_its_values_and_the_close() -> None:
    tracker = SlowToOpen(opens_after=2.0)
    with recording(tracker), trackhook.start_run(config=recording_config(flush_timeout=0.3)) as run:
        for step in range(413):
            trackhook.track_this(step=step, loss=float(step))
    assert received(tracker) == Counter(("loss", step) for step in range(413))
    assert tracker.statuses() == ["SUCCESS"]
    assert delivery_of(run)["undelivered"] == 0


def test_a_tracker_that_never_finishes_opening_is_reported_with_the_reason() -> None:
    tracker = SlowToOpen(opens_after=60.0)
    config = recording_config(flush_timeout=0.3, patience=1.0)
    try:
        with recording(tracker), pytest.warns(trackhook.TrackhookWarning) as caught:
            with trackhook.start_run("cold", config=config) as run:
                trackhook.track_this(step=1, loss=0.5)
    finally:
        tracker.release.set()
    report = delivery_of(run)
    assert report["undelivered"] == 1
    assert report["last_error"].startswith("still opening the run after ")
    assert any("still opening the run after" in str(warning.message) for warning in caught)
    assert tracker.statuses() == []
    for thread in threading.enumerate():  # the run's worker, which returns once the open does
        if thread.name == "trackhook-recording":
            thread.join(30)
    with recording(tracker):
        (result,) = sync_runs(["cold"], config)
    assert result.closed_as == "SUCCESS"
    assert tracker.statuses() == ["SUCCESS"]


# -- item 11: never follow a symbolic link under <run_id>/delivery/ --------------------------------


class Down(RecordingTracker):
    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        raise ConnectionError("down")


def test_links_planted_for_the_closed_marker_and_a_position_are_replaced_not_followed(
    tmp_path: Path,
) -> None:
    config = recording_config(flush_timeout=0.2, patience=0.0)
    with recording(Down()), trackhook.start_run("planted", config=config):
        trackhook.track_this(loss=0.5)
    folder = Path(".run_log_store/planted/delivery/recording")
    (spool,) = Path(".run_log_store/planted/spool").glob("*.jsonl")
    victims = {name: tmp_path / f"victim-{name}" for name in ("closed", f"{spool.stem}.offset")}
    for name, victim in victims.items():
        victim.write_text("")  # empty: the old code read it as "not closed", "offset 0"
        (folder / name).unlink(missing_ok=True)
        os.symlink(victim, folder / name)
    recorder = RecordingTracker()
    with recording(recorder):
        (result,) = sync_runs(["planted"], config)
    assert result.closed_as == "SUCCESS"
    assert recorder.metrics("loss") == {0: 0.5}
    assert all(victim.read_text() == "" for victim in victims.values())
    assert not any((folder / name).is_symlink() for name in victims)
    assert (folder / "closed").read_text() == "SUCCESS"


def test_a_link_planted_for_a_delivery_folder_is_refused_with_its_path(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    delivery = Path(".run_log_store/linked/delivery")
    delivery.mkdir(parents=True)
    os.symlink(outside, delivery / "recording")
    positions = RunStore(".run_log_store").positions("linked", "recording")
    with pytest.raises(UnsafeStorePath, match="never follows links"):
        positions.mark_closed("SUCCESS")
    assert list(outside.iterdir()) == []
