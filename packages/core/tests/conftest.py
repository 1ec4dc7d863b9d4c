"""Every test runs in its own working directory, with no trackhook variables from outside."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRACKHOOK_") or name in (
            "RANK",
            "LOCAL_RANK",
            "NODE_RANK",
            "SLURM_PROCID",
            "OMPI_COMM_WORLD_RANK",
            "PMI_RANK",
        ):
            monkeypatch.delenv(name)
    yield


def recording_config(*types: str, **delivery: float) -> dict[str, object]:
    """A configuration sending to the given (registered) tracker types, with fast delivery."""
    settings = {"interval": 0.01, "flush_timeout": 5.0, **delivery}
    trackers = [{"type": kind} for kind in types or ("recording",)]
    return {"experiment_trackers": trackers, "delivery": settings}
