"""The files trackhook leaves on disk carry a format version: today's read back, the previous
ones still read, a newer one refused with the trackhook version to install, never overwritten."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook import formats
from trackhook.__about__ import __version__
from trackhook.cli import main
from trackhook.formats import FormatTooNewError
from trackhook.runlog import read_run_log, read_run_log_header
from trackhook.store import RunStore, SpoolPosition, iter_spool, read_spool
from trackhook.sync import sync_runs
from trackhook.testing import recording

from .conftest import recording_config

STORE = Path(".run_log_store")
NEWER = 99
INSTALL = f"pip install 'trackhook>{__version__}'"
"""What a reader says of a format newer than any it knows."""


def command(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(arguments))
    return code, out.getvalue(), err.getvalue()


def track_a_run(run_id: str, config: dict[str, Any] | None = None) -> None:
    with trackhook.start_run(run_id, config=config):
        trackhook.track_this(step=0, lr=0.1)
        trackhook.track_this(step=1, loss=0.5)


def write_newer_run_log(run_id: str) -> bytes:
    """A run log as a trackhook of a later format might write it; returns its bytes."""
    STORE.mkdir(exist_ok=True)
    document = {"format": NEWER, "run_id": run_id, "status": "SUCCESS", "renamed_field": 1}
    data = json.dumps(document).encode()
    (STORE / f"{run_id}.json").write_bytes(data)
    return data


SPOOL_LINES = (
    b'{"t":1700000000.0,"s":0,"v":{"lr":0.1}}\n{"t":1700000001.0,"s":1,"v":{"loss":0.5}}\n'
)


def write_spool(run_id: str, name: str) -> Path:
    folder = STORE / run_id / "spool"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(SPOOL_LINES)
    return path


def write_previous_run_log(run_id: str) -> None:
    """A closed run's log as trackhook 0.1.0 wrote it: no format, compact."""
    document = {
        "run_id": run_id,
        "tag": "",
        "status": "SUCCESS",
        "start_time": "2026-11-30T10:00:00+00:00",
        "end_time": "2026-11-30T10:05:00+00:00",
        "owner": {"host": "elsewhere", "pid": 1},
        "experiment_trackers": [],
        "trackers_not_loaded": [],
        "user_defined_metrics": {"lr": 0.1, "loss": {"1": 0.5}},
    }
    STORE.mkdir(exist_ok=True)
    (STORE / f"{run_id}.json").write_text(json.dumps(document))


# -- today's formats -------------------------------------------------------------------------------


def test_a_run_log_and_a_spool_of_todays_format_read_back() -> None:
    track_a_run("today")
    log = read_run_log(STORE / "today.json")
    assert next(iter(log)) == formats.FORMAT
    assert log[formats.FORMAT] == formats.RUN_LOG_FORMAT == 2
    assert log[formats.METRICS] == {"lr": 0.1, "loss": {"1": 0.5}}
    assert read_run_log_header(STORE / "today.json").header[formats.STATUS] == "SUCCESS"
    (spool,) = RunStore(STORE).spool_files("today")
    assert spool.name.endswith(f".v{formats.SPOOL_FORMAT}.jsonl")
    assert formats.spool_format(spool) == 3
    assert [(entry.step, entry.values) for entry in iter_spool(spool)] == [
        (0, {"lr": 0.1}),
        (1, {"loss": 0.5}),
    ]


# -- the previous formats --------------------------------------------------------------------------


def test_a_run_log_of_the_unversioned_format_is_read_by_show_runs_and_sync() -> None:
    write_previous_run_log("previous")
    code, shown, _ = command("show", "previous", "--plain")
    assert code == 0
    assert "loss" in shown
    assert "lr" in shown
    code, listed, _ = command("runs", "--plain")
    assert code == 0
    assert "previous" in listed
    assert "unreadable" not in listed
    with recording():
        (result,) = sync_runs(["previous"], recording_config())
    assert result.refused is None
    assert result.status == "SUCCESS"
    rewritten = read_run_log(STORE / "previous.json")
    assert next(iter(rewritten)) == formats.FORMAT
    assert rewritten[formats.FORMAT] == 2
    assert rewritten[formats.METRICS] == {"lr": 0.1, "loss": {"1": 0.5}}


@pytest.mark.parametrize("name", ["somehost-1-abcd1234.jsonl", "somehost-1-abcd1234.v2.jsonl"])
def test_a_spool_of_the_unversioned_format_or_format_2_is_delivered_by_sync(name: str) -> None:
    write_previous_run_log("old-spool")
    write_spool("old-spool", name)
    with recording() as recorder:
        (result,) = sync_runs(["old-spool"], recording_config())
    assert result.refused is None
    assert result.delivered == {"recording": 2}
    assert recorder.metrics("loss") == {1: 0.5}


# -- newer formats: refused, never overwritten -----------------------------------------------------


def test_show_refuses_a_newer_run_log_naming_the_trackhook_to_install() -> None:
    write_newer_run_log("future")
    code, _, error = command("show", "future")
    assert code == 2
    assert f"format {NEWER}" in error
    assert INSTALL in error


def test_runs_lists_a_newer_run_log_as_unreadable_with_the_reason() -> None:
    track_a_run("today")
    write_newer_run_log("future")
    code, listed, _ = command("runs", "--plain")
    assert code == 0
    assert "today" in listed
    assert "SUCCESS" in listed
    assert "unreadable" in listed
    assert f"format {NEWER}" in listed
    assert INSTALL in listed


def test_sync_reports_a_run_with_a_newer_run_log_syncs_the_others_and_leaves_it_as_it_was() -> None:
    track_a_run("today")
    before = write_newer_run_log("future")
    with recording() as recorder:
        future, today = sync_runs(["future", "today"], recording_config())
    assert future.refused is not None
    assert INSTALL in future.refused
    assert today.refused is None
    assert today.delivered == {"recording": 2}
    assert recorder.metrics("loss") == {1: 0.5}
    assert (STORE / "future.json").read_bytes() == before


def test_a_newer_format_the_table_knows_names_its_first_trackhook() -> None:
    error = FormatTooNewError(Path("x.json"), formats.RUN_LOG, 2)
    assert error.install == "pip install 'trackhook>=0.2.0'"
    assert formats.FIRST_WRITTEN_BY[formats.RUN_LOG][formats.RUN_LOG_FORMAT] == "0.2.0"


def test_a_newer_spool_is_refused_by_delivery_and_its_values_left_untouched() -> None:
    track_a_run("today")
    newer = write_spool("today", f"somehost-1-abcd1234.v{NEWER}.jsonl")
    with pytest.raises(FormatTooNewError, match=f"spool file of format {NEWER}"):
        read_spool(newer, 0)
    with recording() as recorder:
        (result,) = sync_runs(["today"], recording_config())
    assert result.refused is not None
    assert INSTALL in result.refused
    assert str(newer) in result.refused
    assert recorder.metric_records() == [], "neither its values nor the others' were sent"
    assert newer.read_bytes() == SPOOL_LINES
    assert not list((STORE / "today" / "delivery").glob("*/*.offset")), "no position moved"


def test_a_newer_position_file_is_refused_rather_than_started_again() -> None:
    config = recording_config()
    with recording():
        track_a_run("today", config)
    store = RunStore(STORE)
    (spool,) = store.spool_files("today")
    positions = store.positions("today", "recording")
    assert positions.position(spool) == SpoolPosition(spool.stat().st_size, 0)
    positions.folder.joinpath(f"{spool.stem}.offset").write_text(
        json.dumps({"format": NEWER, "offset": 0})
    )
    with pytest.raises(FormatTooNewError, match=f"delivery position of format {NEWER}"):
        positions.position(spool)
    with recording() as recorder:
        (result,) = sync_runs(["today"], config)
    assert result.refused is not None
    assert INSTALL in result.refused
    assert recorder.metric_records() == [], "starting again at 0 would send every value twice"
