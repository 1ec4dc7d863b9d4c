"""The pytest plugin that users get with trackhook: the trackhook_recorder fixture."""

from __future__ import annotations

import trackhook
from trackhook.testing import RecordingTracker


def train(epochs: int) -> None:
    for epoch in range(epochs):
        trackhook.track_this(step=epoch, loss=1.0 / (epoch + 1))


def test_the_recorder_fixture_receives_a_runs_values(trackhook_recorder: RecordingTracker) -> None:
    with trackhook.start_run():
        train(epochs=2)
    assert trackhook_recorder.metrics("loss") == {0: 1.0, 1: 0.5}
    assert trackhook_recorder.statuses() == ["SUCCESS"]
