"""trackhook's conformance suite, run against this tracker as installed (through its entry point)
and read back with TensorBoard's own reader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trackhook import RunInfo
from trackhook.testing.conformance import ReportedRun, TrackerConformance
from trackhook_tensorboard import folder_name


class TestTensorBoardConformance(TrackerConformance):
    tracker_type = "tensorboard"

    @pytest.fixture(autouse=True)
    def _reader(self, read: Callable[[Path], Any]) -> None:
        self._read_folder = read

    def tracker_config(self, folder: Path) -> dict[str, str]:
        return {"log_dir": str(folder / "runs")}

    def read_run(self, folder: Path, run: RunInfo) -> ReportedRun | None:
        tag_folders = [path for path in (folder / "runs").iterdir() if path.is_dir()]
        found = [
            path / folder_name(run.run_id)
            for path in tag_folders
            if (path / folder_name(run.run_id)).is_dir()
        ]
        if not found:
            return None
        (run_folder,) = found
        stored = self._read_folder(run_folder)
        return ReportedRun(
            metrics=stored.last_scalars(),
            params=stored.hparams,
            status=stored.status,
            tag=run_folder.parent.name,
            files={
                key: {step: content for step, _, _, content in images}
                for key, images in stored.images.items()
            },
        )
