"""The pytest plugin of trackhook (``pytest11`` entry point): the ``trackhook_recorder`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trackhook.testing import RecordingTracker, recording
from trackhook.variables import CONFIG_VARIABLE, OWNER_VARIABLE, RUN_ID_VARIABLE, TAG_VARIABLE

__all__ = ["trackhook_recorder"]


@pytest.fixture
def trackhook_recorder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingTracker]:
    """Route the test's tracking to a fresh ``RecordingTracker``, with a run log store in tmp.

    Runs opened without an explicit ``config=`` (``start_run()``, or ``track_this`` outside a run)
    send their values to the recorder; after the run closes every call is in ``recorder.calls``.
    """
    config = tmp_path / "trackhook-recorder.yaml"
    store = tmp_path / ".run_log_store"
    config.write_text(
        f"experiment_tracker:\n  type: recording\nrun_log_store: {str(store)!r}\n"
        "delivery:\n  interval: 0.01\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_VARIABLE, str(config))
    for name in (RUN_ID_VARIABLE, TAG_VARIABLE, OWNER_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    with recording() as recorder:
        yield recorder
