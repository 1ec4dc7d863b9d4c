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
        )

    def test_files_and_images_arrive_with_their_bytes_or_count_as_skipped(self) -> None:
        pytest.skip(
            "TensorBoard stores images but no other files (refused as rejected, see the README's "
            "'Files and images'); the kit expects every file's bytes from a tracker with "
            "trackhook_log_file: test_tensorboard_files.py checks both kinds instead"
        )
