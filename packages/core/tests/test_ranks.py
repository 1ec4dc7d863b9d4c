"""Distributed training: which ranks send, read when the run opens."""

from __future__ import annotations

import pytest

import trackhook
from trackhook.ranks import current_rank
from trackhook.testing import recording

from .conftest import recording_config


@pytest.mark.parametrize(
    ("environ", "rank"),
    [
        ({}, None),
        ({"RANK": "3"}, 3),
        ({"LOCAL_RANK": "1"}, 1),
        ({"LOCAL_RANK": "1", "NODE_RANK": "2", "LOCAL_WORLD_SIZE": "4"}, 9),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, 1000),
        ({"SLURM_PROCID": "5"}, 5),
        ({"OMPI_COMM_WORLD_RANK": "6"}, 6),
        ({"PMI_RANK": "7"}, 7),
    ],
)
def test_the_rank_comes_from_the_launchers_variables(environ: dict[str, str], rank: int) -> None:
    assert current_rank(environ) == rank


def test_by_default_only_rank_zero_sends_but_every_rank_keeps_a_run_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RANK", "1")  # set after import, as a launcher may
    with recording() as recorder, trackhook.start_run("r", config=recording_config()) as run:
        trackhook.track_this(loss=1.0)
    assert recorder.calls == []
    assert run.run_log_path.name == "r.rank-1.json"
    assert run.user_defined_metrics == {"loss": 1.0}


def test_rank_zero_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    with recording() as recorder, trackhook.start_run("r", config=recording_config()) as run:
        trackhook.track_this(loss=1.0)
    assert recorder.metrics("loss") == {0: 1.0}
    assert run.run_log_path.name == "r.json"


def test_ranks_all_sends_from_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")
    config = recording_config() | {"ranks": "all"}
    with recording() as recorder, trackhook.start_run("r", config=config):
        trackhook.track_this(loss=1.0)
    assert recorder.metrics("loss") == {0: 1.0}


def test_each_rank_run_log_holds_only_its_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    config = recording_config() | {"ranks": "all"}
    logs = {}
    with recording():
        for rank in (0, 1):
            monkeypatch.setenv("RANK", str(rank))
            with trackhook.start_run("dist", config=config) as run:
                trackhook.track_this(step=1, who=f"rank{rank}")
            logs[rank] = run.user_defined_metrics
    assert logs == {0: {"who": {"1": "rank0"}}, 1: {"who": {"1": "rank1"}}}
