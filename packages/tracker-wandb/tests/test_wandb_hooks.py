"""The hooks called directly, as the core's delivery thread calls them, read back from disk."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trackhook import MetricRecord, ParamRecord, RunInfo
from trackhook_wandb import STEP_METRIC, WandbRunNotOpenError, WandbTracker, wandb_run_id

Make = Callable[..., WandbTracker]
Read = Callable[..., Any]  # the read_run fixture: returns a WandbRunFile of conftest.py


def metric(key: str, value: float, step: int = 0) -> MetricRecord:
    return MetricRecord(key, value, step, 0.0)


def param(key: str, value: object, step: int = 0) -> ParamRecord:
    return ParamRecord(key, value, step, 0.0)  # type: ignore[arg-type]


def deliver(
    tracker: WandbTracker,
    run: RunInfo,
    *batches: tuple[list[MetricRecord], list[ParamRecord]],
    status: str = "SUCCESS",
) -> dict[str, str]:
    facts = tracker.trackhook_open_run(run)
    for metrics, params in batches:
        tracker.trackhook_log_batch(run, metrics, params)
    tracker.trackhook_close_run(run, status)  # type: ignore[arg-type]
    return facts


def test_tag_names_the_project_and_run_id_names_the_run(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "baseline")
    deliver(make_tracker(project="unused"), run)
    record = read_run(run).run
    assert (record.project, record.display_name, record.run_id) == ("baseline", run_id, run_id)


def test_empty_tag_uses_the_configured_project(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "")
    deliver(make_tracker(project="fallback"), run)
    assert read_run(run).run.project == "fallback"


def test_run_id_wandb_cannot_take_is_made_valid_and_kept_as_name(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(f"spaces and/colons:{run_id}", "baseline")
    facts = deliver(make_tracker(), run)
    record = read_run(run).run
    assert record.display_name == run.run_id
    assert record.run_id == facts["run_id"]
    assert re.fullmatch(r"spaces_and_colons_[\w.-]+_[0-9a-f]{8}", record.run_id)
    assert len(record.run_id) <= 64


def test_tag_wandb_cannot_take_as_project_is_made_valid(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "team/experiment")
    deliver(make_tracker(), run)
    assert read_run(run).run.project.startswith("team_experiment_")


def test_numeric_values_become_history_values_at_the_trackhook_step(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "steps")
    deliver(make_tracker(), run, ([metric("loss", 0.5, 3), metric("acc", 1)], []))
    logged = read_run(run)
    assert logged.rows_without_internals() == [
        {STEP_METRIC: 0, "acc": 1},
        {STEP_METRIC: 3, "loss": 0.5},
    ]


def test_every_metric_is_charted_against_the_trackhook_step(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "steps")
    deliver(make_tracker(), run, ([metric("loss", 0.5, 3)], []))
    globs = {m.glob_name: m.step_metric for m in read_run(run).metrics if m.glob_name}
    assert globs == {"*": STEP_METRIC}


def test_out_of_order_and_repeated_steps_all_arrive(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "steps")
    deliver(
        make_tracker(),
        run,
        ([metric("loss", 0.9, 5)], []),
        ([metric("loss", 0.7, 2)], []),
        ([metric("loss", 0.6, 2)], []),
        ([metric("loss", 0.1, 0)], []),
    )
    assert read_run(run).values_of("loss") == [(5, 0.9), (2, 0.7), (2, 0.6), (0, 0.1)]


def test_a_batch_becomes_one_row_per_step_in_increasing_order(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "steps")
    batch = [metric("a", 1, 7), metric("b", 2, 1), metric("c", 3, 7), metric("a", 4, 1)]
    deliver(make_tracker(), run, (batch, []))
    assert read_run(run).rows_without_internals() == [
        {STEP_METRIC: 1, "b": 2, "a": 4},
        {STEP_METRIC: 7, "a": 1, "c": 3},
    ]


def test_same_key_twice_at_one_step_in_a_batch_gives_two_points(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "steps")
    deliver(make_tracker(), run, ([metric("a", 1, 2), metric("b", 5, 2), metric("a", 9, 2)], []))
    assert read_run(run).rows_without_internals() == [
        {STEP_METRIC: 2, "a": 1, "b": 5},
        {STEP_METRIC: 2, "a": 9},
    ]


def test_a_batch_offered_again_after_wandb_raised_midway_logs_no_row_twice(
    make_tracker: Make, read_run: Read, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The core offers a batch again after its hook raised; W&B already has the rows before the
    # failure. The fault is injected into the real run's ``log``; the file is W&B's own.
    tracker, run = make_tracker(), RunInfo(run_id, "retry")
    tracker.trackhook_open_run(run)
    batch = [metric("loss", 1.0 / step, step) for step in range(1, 6)]
    with tracker.trackhook_client_context(run) as wandb_run:
        real_log, calls = wandb_run.log, []

        def fails_on_the_third_row(row: dict[str, Any]) -> None:
            calls.append(row)
            if len(calls) == 3:
                raise ConnectionError("wandb service went away")
            real_log(row)

        monkeypatch.setattr(wandb_run, "log", fails_on_the_third_row)
        with pytest.raises(ConnectionError):
            tracker.trackhook_log_batch(run, batch, [])
        tracker.trackhook_log_batch(run, batch, [])
        monkeypatch.setattr(wandb_run, "log", real_log)
    tracker.trackhook_log_batch(run, [metric("loss", 0.1, 6)], [])
    tracker.trackhook_close_run(run, "SUCCESS")
    assert read_run(run).values_of("loss") == [(step, 1.0 / step) for step in range(1, 6)] + [
        (6, 0.1)
    ]


def test_nan_and_infinities_arrive(make_tracker: Make, read_run: Read, run_id: str) -> None:
    run = RunInfo(run_id, "floats")
    values = [metric("nan", math.nan), metric("inf", math.inf), metric("minf", -math.inf)]
    deliver(make_tracker(), run, (values, []))
    (row,) = read_run(run).history
    assert math.isnan(row["nan"])
    assert (row["inf"], row["minf"]) == (math.inf, -math.inf)


def test_long_keys_and_values_arrive_whole(make_tracker: Make, read_run: Read, run_id: str) -> None:
    run = RunInfo(run_id, "long")
    key = "k" * 1000
    text = "x" * 100_000  # spans several 32 KiB blocks of the transaction log
    deliver(make_tracker(), run, ([metric(key, 1.5)], [param("text_0", text)]))
    logged = read_run(run)
    assert logged.values_of(key) == [(0, 1.5)]
    assert logged.config["text_0"] == text


def test_other_values_become_config_entries_with_their_native_value(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "params")
    params = [
        param("spam_0", "hello"),
        param("is_it_true_0", False),
        param("nothing_0", None),
        param("sizes_1", [1, "two", 3.0], step=1),
    ]
    deliver(make_tracker(), run, ([], params))
    assert read_run(run).config == {
        "spam_0": "hello",
        "is_it_true_0": False,
        "nothing_0": None,
        "sizes_1": [1, "two", 3.0],
    }


def test_a_config_entry_tracked_again_takes_the_new_value(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "params")
    deliver(make_tracker(), run, ([], [param("spam_0", "hello")]), ([], [param("spam_0", "hey")]))
    assert read_run(run).config == {"spam_0": "hey"}


def test_success_finishes_with_exit_code_zero(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "status")
    deliver(make_tracker(), run, status="SUCCESS")
    assert read_run(run).exit_code == 0


def test_fail_finishes_with_a_non_zero_exit_code(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "status")
    deliver(make_tracker(), run, status="FAIL")
    assert read_run(run).exit_code != 0


def test_the_same_run_id_resumes_the_same_wandb_run(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "resume")
    deliver(make_tracker(), run, ([metric("loss", 1.0, 0)], []))
    deliver(make_tracker(), run, ([metric("loss", 0.5, 1)], []))
    first, second = read_run(run, 0), read_run(run, 1)
    assert first.run.run_id == second.run.run_id
    assert second.run.resume
    assert second.values_of("loss") == [(1, 0.5)]


def test_close_without_open_continues_and_finishes_the_run(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "sync")
    deliver(make_tracker(), run)
    make_tracker().trackhook_close_run(run, "FAIL")
    assert read_run(run).exit_code != 0


def test_log_batch_and_close_first_in_a_fresh_tracker_continue_the_run_opened_elsewhere(
    tmp_path: Path, make_tracker: Make, read_run: Read, run_id: str
) -> None:
    # `trackhook sync` delivers the rest of a run whose process died, in a process that never
    # called trackhook_open_run: log_batch may be its first hook.
    run = RunInfo(run_id, "sync")
    opener = (
        "import sys\n"
        "from trackhook import MetricRecord, RunInfo\n"
        "from trackhook_wandb import WandbConfig, WandbTracker\n"
        "tracker = WandbTracker(WandbConfig(mode='offline', dir=sys.argv[1]))\n"
        "run = RunInfo(sys.argv[2], 'sync')\n"
        "tracker.trackhook_open_run(run)\n"
        "tracker.trackhook_log_batch(run, [MetricRecord('loss', 1.0, 0, 0.0)], [])\n"
    )  # and the process ends without trackhook_close_run
    # A W&B service of its own, as a process of its own has: this process's would keep the run.
    own_service = {name: value for name, value in os.environ.items() if name != "WANDB_SERVICE"}
    command = [sys.executable, "-c", opener, str(tmp_path), run_id]
    subprocess.run(command, env=own_service, check=True, timeout=120)
    syncer = make_tracker()
    syncer.trackhook_log_batch(run, [metric("loss", 0.5, 1)], [param("spam_1", "late")])
    syncer.trackhook_close_run(run, "FAIL")
    continued = read_run(run)
    assert continued.run.run_id == wandb_run_id(run_id)
    assert continued.run.resume
    assert continued.values_of("loss") == [(1, 0.5)]
    assert continued.config == {"spam_1": "late"}
    assert continued.exit_code != 0


def test_several_runs_live_side_by_side_in_one_process(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    tracker = make_tracker()
    outer, inner = RunInfo(f"{run_id}-outer", "many"), RunInfo(f"{run_id}-inner", "many")
    tracker.trackhook_open_run(outer)
    tracker.trackhook_open_run(inner)
    tracker.trackhook_log_batch(outer, [metric("where", 1)], [])
    tracker.trackhook_log_batch(inner, [metric("where", 2)], [])
    tracker.trackhook_close_run(inner, "SUCCESS")
    tracker.trackhook_close_run(outer, "SUCCESS")
    assert read_run(outer).values_of("where") == [(0, 1)]
    assert read_run(inner).values_of("where") == [(0, 2)]


def test_hooks_work_from_a_delivery_thread(make_tracker: Make, read_run: Read, run_id: str) -> None:
    run = RunInfo(run_id, "thread")
    tracker = make_tracker()
    worker = threading.Thread(target=deliver, args=(tracker, run, ([metric("x", 1)], [])))
    worker.start()
    worker.join()
    assert read_run(run).values_of("x") == [(0, 1)]


def test_client_context_yields_the_wandb_run_of_the_same_run(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    import wandb

    run = RunInfo(run_id, "context")
    tracker = make_tracker()
    tracker.trackhook_open_run(run)
    with tracker.trackhook_client_context(run) as native:
        assert isinstance(native, wandb.Run)
        native.log({"native": 7})
    tracker.trackhook_close_run(run, "SUCCESS")
    assert [row["native"] for row in read_run(run).history if "native" in row] == [7]


def test_client_context_of_a_run_not_opened_says_so(make_tracker: Make, run_id: str) -> None:
    with pytest.raises(WandbRunNotOpenError, match=run_id):
        make_tracker().trackhook_client_context(RunInfo(run_id, ""))


def test_facts_name_the_wandb_run_and_its_folder(
    make_tracker: Make, read_run: Read, run_id: str
) -> None:
    run = RunInfo(run_id, "facts")
    facts = deliver(make_tracker(), run)
    assert facts["run_id"] == run_id
    assert facts["project"] == "facts"
    assert facts["mode"] == "offline"
    assert Path(facts["run_dir"]) == read_run(run).path.parent


def test_facts_never_hold_the_api_key(
    make_tracker: Make, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    facts = deliver(make_tracker(), RunInfo(run_id, "secret"))
    assert secret not in repr(facts)


def test_disabled_mode_works_and_writes_nothing(
    tmp_path: Path, make_tracker: Make, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    folder = tmp_path / "never-created"
    facts = deliver(
        make_tracker(mode="disabled", dir=str(folder)),
        RunInfo(run_id, "off"),
        ([metric("loss", 1.0)], [param("spam_0", "hello")]),
    )
    assert facts["mode"] == "disabled"
    assert not folder.exists()
    assert not list(tmp_path.iterdir())
