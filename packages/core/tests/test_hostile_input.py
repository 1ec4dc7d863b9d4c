"""Hostile input: what no tracker can take is refused at ``track_this``, and a spool line that
``track_this`` never wrote is skipped and counted while every other value is delivered once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trackhook
from trackhook.cli import main
from trackhook.store import RunStore, iter_spool
from trackhook.testing import RecordingTracker, recording

from .conftest import recording_config

# -- item 4: what no tracker can take ----------------------------------------------------------


def test_a_step_beyond_int64_is_refused_naming_the_step() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(step=2**63 - 1, loss=1.0)
        with pytest.raises(trackhook.InvalidValueError, match=r"'step'.*2\*\*63 - 1"):
            trackhook.track_this(step=2**63, loss=0.5)
    assert run.user_defined_metrics == {"loss": {str(2**63 - 1): 1.0}}


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"text": "ok \ud800"}, "text"),
        ({"bad \udc80": 1.0}, "bad \udc80"),
        ({"config": {"inner": {"deep": "\udfff"}}}, "config.inner.deep"),
        ({"config": {"\ud801": 1}}, "config.\ud801"),
        ({"tags": ["fine", "\ud802"]}, "tags[1]"),
    ],
)
def test_a_string_that_is_not_valid_unicode_is_refused_naming_its_key(
    values: dict[str, object], key: str
) -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(**{"température": "élevée 🔥"})  # valid Unicode beyond ASCII is fine
        with pytest.raises(trackhook.InvalidValueError, match="surrogate") as raised:
            trackhook.track_this(**values)
    assert raised.value.key == key
    assert run.user_defined_metrics == {"température": "élevée 🔥"}


# -- item 14: two spellings of one key in one call ------------------------------------------------


@pytest.mark.parametrize(
    ("values", "spellings"),
    [
        ({"a": {"b": 1}, "a.b": 2}, ("a['b']", "'a.b'")),
        ({"a.b.c": 2, "a": {"b": {"c": 1}}}, ("'a.b.c'", "a['b']['c']")),
        ({"a": {"b.c": 1, "b": {"c": 2}}}, ("a['b.c']", "a['b']['c']")),
    ],
)
def test_two_spellings_of_one_dotted_key_in_one_call_are_refused_naming_both(
    values: dict[str, object], spellings: tuple[str, str]
) -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(step=0, **{"a.b": 1, "a": {"c": 2}})  # dotted keys that do not meet
        with pytest.raises(trackhook.InvalidValueError) as raised:
            trackhook.track_this(step=1, **values)
    message = str(raised.value)
    assert all(spelling in message for spelling in spellings), message
    assert run.user_defined_metrics == {"a.b": 1, "a": {"c": 2}}


# -- item 12: spool lines of the wrong shape ------------------------------------------------------

FOREIGN_LINES = [
    b"[]",
    b"null",
    b'"a string"',
    b"not json at all",
    b'{"t": 1.0, "s": 1}',
    b'{"t": 1.0, "s": 1, "v": [1]}',
    b'{"t": "x", "s": 1, "v": {"a": 1}}',
    b'{"t": 1.0, "s": -1, "v": {"a": 1}}',
    b'{"t": 1.0, "s": true, "v": {"a": 1}}',
    b'{"t": 1.0, "s": 9223372036854775808, "v": {"a": 1}}',
    b'{"t": 1.0, "s": 1, "v": {"a": "\\ud800"}}',
    b'{"t": 1.0, "s": 1, "v": {"": 1}}',
    b'{"t": 1e300, "s": 1, "v": {"a": 1}}',
    b'{"t": -1.0, "s": 1, "v": {"a": 1}}',
]


def plant(spool: Path, lines: list[bytes]) -> None:
    with open(spool, "ab") as file:
        file.write(b"".join(line + b"\n" for line in lines))


def test_foreign_spool_lines_are_skipped_and_every_tracked_value_is_delivered_once() -> None:
    tracker = RecordingTracker()
    with recording(tracker), trackhook.start_run(config=recording_config()) as run:
        for step in range(50):
            trackhook.track_this(step=step, loss=float(step))
        run.flush()
        (spool,) = RunStore(".run_log_store").spool_files(run.run_id)
        plant(spool, FOREIGN_LINES)
        for step in range(50, 100):
            trackhook.track_this(step=step, loss=float(step))
    assert sorted(record.step for record in tracker.metric_records()) == list(range(100))
    assert tracker.metrics("loss") == {step: float(step) for step in range(100)}
    (report,) = json.loads(run.run_log_path.read_text())["experiment_trackers"]
    assert (report["delivery"]["delivered"], report["delivery"]["undelivered"]) == (100, 0)
    assert tracker.statuses() == ["SUCCESS"]


def test_show_reads_a_spool_with_foreign_lines_and_counts_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trackhook.cli._runlogs import find_run

    with trackhook.start_run("planted") as run:
        trackhook.track_this(step=1, loss=0.5)
        run.flush()
        (spool,) = RunStore(".run_log_store").spool_files(run.run_id)
        plant(spool, FOREIGN_LINES)
        trackhook.track_this(step=2, loss=0.25)
    assert main(["show", "planted"]) == 0
    shown_text = capsys.readouterr().out
    assert "loss" in shown_text
    assert f"{len(FOREIGN_LINES)} spool lines could not be read" in shown_text
    shown = find_run(RunStore(".run_log_store"), "planted")
    assert shown.unreadable_lines == len(FOREIGN_LINES)
    assert shown.values == {"loss": {1: 0.5, 2: 0.25}}


def test_lines_after_more_than_a_chunk_of_foreign_lines_are_still_read(tmp_path: Path) -> None:
    spool = tmp_path / "x.jsonl"
    plant(spool, [b'{"t": 1.0, "s": 0, "v": {"first": 1}}'])
    plant(spool, [b'{"not": "an entry", "pad": "' + b"x" * 1000 + b'"}'] * 3000)  # 3 MB
    plant(spool, [b'{"t": 2.0, "s": 1, "v": {"last": 2}}'])
    entries = list(iter_spool(spool))
    assert [entry.values for entry in entries if not entry.unreadable] == [
        {"first": 1},
        {"last": 2},
    ]
    assert sum(entry.unreadable for entry in entries) == 3000
