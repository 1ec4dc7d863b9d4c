"""The parts of delivery, each alone and without a thread: fitting, batching, the retry policy,
progress, the cursor over a spool file, and the report (a whole pass: ``test_delivery_pass.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackhook.backoff import FIRST_WAIT, TRIES_AT_EXIT, Backoff, RetryPolicy
from trackhook.batching import DEFAULT_BATCH, batch_end, batch_size
from trackhook.cursor import SpoolCursor
from trackhook.fitting import FittedLines, Fitter
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.progress import SAVE_INTERVAL, SendProgress
from trackhook.records import MetricRecord, ParamRecord
from trackhook.report import DeliveryReport
from trackhook.runlog import MAX_REJECTED_KEYS, MAX_REJECTED_REASONS, OTHER_REASONS
from trackhook.store import RunStore, RunStoreError, SpoolPosition, SpoolWriter, TrackerPositions

LIMITS = TrackerLimits(
    key_chars=r"[\w.]",
    max_param_length=8,
    param_key="{key}_{step}",
    max_metrics_per_batch=2,
    max_params_per_batch=1,
    max_values_per_batch=3,
)


def _spool(tmp_path: Path, *calls: dict[str, object]) -> Path:
    path = tmp_path / "spool.v2.jsonl"
    writer = SpoolWriter(path)
    for step, values in enumerate(calls):
        writer.append(1.0, step, dict(values))
    writer.close()
    return path


def _no_renames(key: str, stored: str, why: str | None) -> None:
    raise AssertionError(f"{key!r} renamed to {stored!r}")


def test_a_fitter_makes_metrics_and_params_with_the_trackers_keys(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"loss": 0.5, "lr": "cosine"})
    fitted = Fitter(TrackerLimits(param_key="{key}_{step}"), _no_renames, tmp_path).read_batch(
        path, SpoolPosition()
    )
    assert fitted is not None
    assert fitted.records == [
        MetricRecord("loss", 0.5, 0, 1.0),
        ParamRecord("lr_0", "cosine", 0, 1.0),
    ]


def test_a_fitter_renames_an_unstorable_key_once_and_flags_it(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"a@b": 1.0}, {"a@b": 2.0})
    told: list[str] = []
    fitter = Fitter(LIMITS, lambda key, stored, why: told.append(key), tmp_path)
    fitted = fitter.read_batch(path, SpoolPosition())
    assert fitted is not None
    assert told == ["a@b"]
    assert fitted.records[0].key != "a@b"
    assert fitted.count_flags(2) == (2, 0)


def test_a_fitter_truncates_a_long_param_and_keeps_the_full_text(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"note": "a long explanation"})
    fitted = Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition())
    assert fitted is not None
    (record,) = fitted.records
    assert isinstance(record, ParamRecord)
    assert record.full_value == "a long explanation"
    assert fitted.count_flags(1) == (0, 1)


def test_a_fitter_reads_whole_lines_until_a_batch_is_full(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"a": 1.0, "b": 2.0}, {"c": 3.0, "d": 4.0}, {"e": 5.0})
    fitted = Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition())
    assert fitted is not None
    assert [record.key for record in fitted.records] == ["a", "b", "c", "d"]
    assert len(fitted.entries) == 2


def test_a_fitter_skips_the_values_of_a_line_already_handled(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"a": 1.0, "b": 2.0, "c": 3.0})
    fitted = Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition(0, 2))
    assert fitted is not None
    assert [record.key for record in fitted.records] == ["c"]


def test_a_fitter_remakes_records_with_the_tighter_limits_asked_for(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"note": "abcdef"})
    fitter = Fitter(LIMITS, _no_renames, tmp_path)
    fitted = fitter.read_batch(path, SpoolPosition())
    assert fitted is not None
    fitter.tighten(fitted, TighterLimitsRequired("too long", max_param_length=4))
    assert fitter.limits.max_param_length == 4
    assert fitted.count_flags(1) == (0, 1)


def test_a_fitter_refuses_a_demand_that_tightens_nothing(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"note": "abc"})
    fitter = Fitter(LIMITS, _no_renames, tmp_path)
    fitted = fitter.read_batch(path, SpoolPosition())
    assert fitted is not None
    demand = TighterLimitsRequired("same", max_param_length=8)
    with pytest.raises(TighterLimitsRequired):
        fitter.tighten(fitted, demand)


def test_a_position_points_inside_a_line_partly_handled(tmp_path: Path) -> None:
    path = _spool(tmp_path, {"a": 1.0}, {"b": 2.0, "c": 3.0})
    fitted = Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition())
    assert fitted is not None
    first_line_end = fitted.line_offsets[0]
    fitted.sent = 2
    assert fitted.position() == SpoolPosition(first_line_end, 1)
    fitted.sent = 3
    assert fitted.position() == SpoolPosition(fitted.line_offsets[-1])


def test_nothing_to_read_gives_no_batch(tmp_path: Path) -> None:
    path = _spool(tmp_path)
    assert Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition()) is None


def _metrics(count: int) -> list[MetricRecord | ParamRecord]:
    return [MetricRecord(f"m{i}", 1.0, 0, 1.0) for i in range(count)]


def test_a_batch_holds_at_most_the_declared_metrics_and_params() -> None:
    records = [*_metrics(3), ParamRecord("p", "x", 0, 1.0), ParamRecord("q", "y", 0, 1.0)]
    assert batch_end(records, 0, LIMITS, batches=True) == 2
    assert batch_end(records, 2, LIMITS, batches=True) == 4
    assert batch_end(records, 4, LIMITS, batches=True) == 5


def test_a_tracker_without_a_batch_hook_gets_one_value_a_call() -> None:
    assert batch_end(_metrics(5), 1, LIMITS, batches=False) == 2


def test_a_tracker_declaring_no_batch_size_gets_the_default() -> None:
    limits = TrackerLimits()
    assert batch_size(limits) == DEFAULT_BATCH
    assert batch_end(_metrics(DEFAULT_BATCH + 1), 0, limits, batches=True) == DEFAULT_BATCH


def test_backoff_doubles_up_to_its_most_and_resets_on_success() -> None:
    backoff = Backoff(most=1.0)
    assert [backoff.failed() for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    backoff.succeeded()
    assert backoff.current == 0.0
    assert backoff.failed() == 0.25


def test_a_retry_policy_waits_the_interval_while_all_goes_well() -> None:
    policy = RetryPolicy(Backoff(most=8.0))
    policy.succeeded()
    assert policy.wait(interval=0.1, time_left=None) == 0.1


def test_a_retry_policy_waits_longer_after_each_failure_and_the_interval_after_a_success() -> None:
    policy = RetryPolicy(Backoff(most=8.0))
    assert policy.tracker_failed(at_exit=False)
    assert policy.wait(interval=0.1, time_left=None) == FIRST_WAIT
    assert policy.tracker_failed(at_exit=False)
    assert policy.wait(interval=0.1, time_left=None) == 2 * FIRST_WAIT
    policy.succeeded()
    assert policy.wait(interval=0.1, time_left=None) == 0.1


def test_a_retry_policy_gives_up_at_exit_after_two_failed_tries() -> None:
    policy = RetryPolicy(Backoff(most=8.0))
    assert TRIES_AT_EXIT == 2
    assert policy.tracker_failed(at_exit=True)
    assert not policy.tracker_failed(at_exit=True)


def test_a_retry_policy_retries_a_failing_store_while_the_run_goes_on_not_at_its_end() -> None:
    policy = RetryPolicy(Backoff(most=8.0))
    assert policy.store_failed(finishing=False)
    assert not policy.store_failed(finishing=True)


def test_a_finishing_retry_waits_no_longer_than_the_time_left_and_not_after_a_success() -> None:
    policy = RetryPolicy(Backoff(most=8.0))
    for _ in range(5):
        policy.tracker_failed(at_exit=False)
    assert policy.wait(interval=0.1, time_left=1.5) == 1.5
    assert policy.wait(interval=0.1, time_left=-1.0) == 0.0
    policy.succeeded()
    assert policy.wait(interval=0.1, time_left=1.5) == 0.0


def _progress(tmp_path: Path, clock: list[float]) -> tuple[SendProgress, RunStore]:
    store = RunStore(tmp_path / ".run_log_store")
    return SendProgress(store.positions("run", "t"), clock=lambda: clock[0]), store


def _fitted(tmp_path: Path) -> FittedLines:
    path = _spool(tmp_path, {"a": 1.0, "b": 2.0})
    fitted = Fitter(LIMITS, _no_renames, tmp_path).read_batch(path, SpoolPosition())
    assert fitted is not None
    return fitted


def test_progress_is_written_down_only_when_saved(tmp_path: Path) -> None:
    progress, store = _progress(tmp_path, [0.0])
    fitted = _fitted(tmp_path)
    progress.handled(fitted, 1)
    assert store.positions("run", "t").position(fitted.path) == SpoolPosition()
    progress.save()
    assert store.positions("run", "t").position(fitted.path) == SpoolPosition(0, 1)


def test_progress_not_yet_written_is_resumed_from(tmp_path: Path) -> None:
    progress, _ = _progress(tmp_path, [0.0])
    fitted = _fitted(tmp_path)
    progress.handled(fitted, 2)
    assert progress.resume_at(fitted.path) == SpoolPosition(fitted.line_offsets[-1])


def test_progress_is_due_for_saving_at_most_every_interval() -> None:
    clock = [100.0]
    progress = SendProgress(RunStore(Path("store")).positions("run", "t"), clock=lambda: clock[0])
    assert progress.save_due()
    assert not progress.save_due()
    clock[0] += SAVE_INTERVAL
    assert progress.save_due()


def _cursor(store: RunStore, path: Path, progress: SendProgress | None = None) -> SpoolCursor:
    positions = store.positions("run", "t")
    progress = progress if progress is not None else SendProgress(positions)
    return SpoolCursor(path, positions, progress, Fitter(LIMITS, _no_renames, store.root))


def test_a_cursor_claims_its_file_and_a_second_cursor_on_it_is_not_claimed(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0})
    with _cursor(store, path) as first:
        with _cursor(store, path) as second:
            assert first.claimed
            assert not second.claimed
    with _cursor(store, path) as after:
        assert after.claimed


def test_a_cursor_resumes_at_the_saved_position(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0}, {"b": 2.0})
    with _cursor(store, path) as cursor:
        batch = _handle(cursor, 1)
        cursor.save()
    with _cursor(store, path) as again:
        assert again.position == SpoolPosition(batch.line_offsets[0])
        resumed = again.next_batch()
    assert resumed is not None
    assert [record.key for record in resumed.records] == ["b"]


def test_a_cursor_saves_what_was_handled(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0}, {"b": 2.0})
    with _cursor(store, path) as cursor:
        batch = _handle(cursor, 2)
        assert store.positions("run", "t").position(path) == SpoolPosition()
        cursor.save()
    assert store.positions("run", "t").position(path) == SpoolPosition(batch.line_offsets[-1])


def test_a_cursor_resumes_further_than_the_disk_says_after_a_save_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0}, {"b": 2.0})
    progress = SendProgress(store.positions("run", "t"))
    monkeypatch.setattr(TrackerPositions, "save", _full_disk)
    with _cursor(store, path, progress) as cursor:
        batch = _handle(cursor, 1)
        with pytest.raises(RunStoreError):
            cursor.save()
    assert store.positions("run", "t").position(path) == SpoolPosition()
    with _cursor(store, path, progress) as again:
        assert again.position == SpoolPosition(batch.line_offsets[0])


def test_a_cursor_resumes_inside_a_line_after_the_values_done(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0, "b": 2.0, "c": 3.0})
    with _cursor(store, path) as cursor:
        _handle(cursor, 1)
        cursor.save()
    with _cursor(store, path) as again:
        assert again.position == SpoolPosition(0, values_done=1)
        resumed = again.next_batch()
    assert resumed is not None
    assert [record.key for record in resumed.records] == ["b", "c"]


def test_a_cursor_gives_no_batch_once_its_file_is_handled_to_the_end(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".run_log_store")
    path = _spool(tmp_path, {"a": 1.0})
    with _cursor(store, path) as cursor:
        _handle(cursor, None)
        assert cursor.next_batch() is None


def _handle(cursor: SpoolCursor, count: int | None) -> FittedLines:
    """The cursor's next batch, its first ``count`` records handled (all of them: ``None``)."""
    batch = cursor.next_batch()
    assert batch is not None
    cursor.handled(batch, len(batch.records) if count is None else count)
    return batch


def _full_disk(positions: TrackerPositions, spool: Path, position: SpoolPosition) -> None:
    raise RunStoreError(positions.folder, "record delivery positions in", OSError(28, "full"))


def test_a_report_keeps_at_most_the_first_reasons_and_keys_refused() -> None:
    report = DeliveryReport()
    for n in range(MAX_REJECTED_REASONS + 2):
        report.reject(f"key{n}", f"reason {n}")
    assert report.rejected == MAX_REJECTED_REASONS + 2
    assert len(report.rejected_reasons) == MAX_REJECTED_REASONS + 1
    assert report.rejected_reasons[OTHER_REASONS] == 2
    assert len(report.rejected_keys) == MAX_REJECTED_KEYS


def test_a_report_moves_an_error_recovered_from_out_of_last_error() -> None:
    report = DeliveryReport(last_error="ConnectionError: down")
    report.recover()
    assert report.last_error is None
    assert report.as_dict()["recovered_error"] == "ConnectionError: down"
