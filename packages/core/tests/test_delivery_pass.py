"""One delivery pass, ``TrackerDelivery.deliver_once``, called without a thread: how each pass ends.

A pass never raises: the tracker's failure and the store's are outcomes, and what the tracker
took before it failed is recorded, so that the next pass delivers each value once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook.config import load_config
from trackhook.delivery import Ending, TrackerDelivery
from trackhook.records import RunInfo
from trackhook.store import RunStore, RunStoreError, SpoolPosition, SpoolWriter, TrackerPositions
from trackhook.testing import RecordingTracker, recording
from trackhook.trackers import build_trackers

from .conftest import recording_config

pytestmark = pytest.mark.filterwarnings("ignore::trackhook.TrackhookWarning")

RUN = RunInfo(run_id="run", tag="", started_at=0.0)


def _delivery(store: RunStore, **delivery: float) -> TrackerDelivery:
    loaded = load_config(recording_config(**delivery))
    (tracker,) = build_trackers(loaded).loaded
    return TrackerDelivery(tracker, RUN, store, loaded.config.delivery, own_spool=None)


def _spool_of_run(store: RunStore, *calls: dict[str, object]) -> Path:
    path = store.new_spool_path("run")
    writer = SpoolWriter(path)
    for step, values in enumerate(calls):
        writer.append(1.0, step, dict(values))
    writer.close()
    return path


def _store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / ".run_log_store")


def _soon() -> float:
    return time.monotonic() + 60.0


def test_a_pass_while_the_run_goes_on_delivers_and_asks_for_more(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _spool_of_run(store, {"loss": 0.5})
    with recording() as tracker:
        outcome = _delivery(store).deliver_once(None)
    assert outcome.ending is Ending.MORE_TO_DO
    assert tracker.metrics("loss") == {0: 0.5}
    assert tracker.statuses() == []


def test_a_finishing_pass_that_delivers_everything_closes_the_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _spool_of_run(store, {"loss": 0.5, "lr": "cosine"})
    with recording() as tracker:
        delivery = _delivery(store)
        outcome = delivery.deliver_once(_soon(), status="SUCCESS")
    assert outcome.ending is Ending.DONE
    assert tracker.metrics("loss") == {0: 0.5}
    assert tracker.statuses() == ["SUCCESS"]
    assert delivery.report.delivered == 2
    assert delivery.closed_in_tracker()


def test_a_finishing_pass_past_its_deadline_is_out_of_time_and_leaves_the_values_in_the_spool(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    path = _spool_of_run(store, {"loss": 0.5})
    with recording() as tracker:
        delivery = _delivery(store, patience=0.0)
        outcome = delivery.deliver_once(time.monotonic() - 1.0, status="SUCCESS")
    assert outcome.ending is Ending.OUT_OF_TIME
    assert tracker.metric_records() == []
    assert tracker.statuses() == []
    assert not delivery.closed_in_tracker()
    assert store.positions("run", "recording").position(path) == SpoolPosition()


def test_a_tracker_that_accepted_values_recently_gets_more_time_up_to_the_patience(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    _spool_of_run(store, {"loss": 0.5})
    long_ago = time.monotonic() - 1000.0
    with recording():
        delivery = _delivery(store, patience=60.0)
        assert delivery.give_up_at(long_ago) == long_ago, "no progress yet: the deadline"
        delivery.deliver_once(None)
    assert delivery.give_up_at(long_ago) == long_ago + 60.0


class FailsOnSecondCall(RecordingTracker):
    """Takes one value a call and fails its second call, once: an outage mid-file."""

    limits = trackhook.TrackerLimits(max_values_per_batch=1)

    def __init__(self) -> None:
        super().__init__()
        self.calls_made = 0

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: Any, metrics: Any, params: Any) -> None:
        self.calls_made += 1
        if self.calls_made == 2:
            raise ConnectionError("server unavailable")
        super().trackhook_log_batch(run, metrics, params)


def test_a_tracker_that_raises_fails_the_pass_and_the_next_pass_delivers_each_value_once(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    _spool_of_run(store, {"a": 1.0, "b": 2.0}, {"c": 3.0})
    tracker = FailsOnSecondCall()
    with recording(tracker):
        delivery = _delivery(store)
        failed = delivery.deliver_once(None)
        assert failed.ending is Ending.TRACKER_FAILED
        assert isinstance(failed.error, ConnectionError)
        assert delivery.report.last_error == "ConnectionError: server unavailable"
        again = delivery.deliver_once(None)
    assert again.ending is Ending.MORE_TO_DO
    received = Counter(record.key for record in tracker.metric_records())
    assert received == Counter({"a": 1, "b": 1, "c": 1})
    assert delivery.report.delivered == 3
    assert delivery.report.last_error is None


def test_a_store_that_cannot_record_positions_ends_the_pass_with_the_stores_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(positions: TrackerPositions, spool: Path, position: SpoolPosition) -> None:
        raise RunStoreError(positions.folder, "record delivery positions in", OSError(28, "full"))

    store = _store(tmp_path)
    _spool_of_run(store, {"loss": 0.5})
    monkeypatch.setattr(TrackerPositions, "save", full_disk)
    with recording():
        delivery = _delivery(store)
        outcome = delivery.deliver_once(None)
    assert outcome.ending is Ending.STORE_FAILED
    assert isinstance(outcome.error, RunStoreError)
    assert delivery.report.last_error is not None
    assert delivery.report.last_error.startswith("the run log store failed: ")


def test_a_spool_file_claimed_by_another_holder_is_busy_not_delivered_and_the_run_not_closed(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    path = _spool_of_run(store, {"loss": 0.5})
    with recording() as tracker, store.positions("run", "recording").claim(path) as claimed:
        assert claimed
        delivery = _delivery(store)
        outcome = delivery.deliver_once(_soon(), status="SUCCESS")
    assert outcome.ending is Ending.DONE
    assert outcome.busy == (path,)
    assert tracker.metric_records() == []
    assert tracker.statuses() == []
    assert not delivery.closed_in_tracker()


def test_a_pass_without_a_deadline_ends_at_once_when_interrupted_by_the_finish(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    _spool_of_run(store, {"loss": 0.5})
    finishing = threading.Event()
    finishing.set()
    with recording() as tracker:
        outcome = _delivery(store).deliver_once(None, interrupt=finishing)
    assert outcome.ending is Ending.MORE_TO_DO
    assert tracker.metric_records() == []
