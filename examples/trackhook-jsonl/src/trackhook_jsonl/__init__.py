"""A trackhook tracker that appends every value to a JSON-lines file.

It implements the per-value hooks, the simplest way to write a tracker; trackhook calls them from
a background thread, in batches it reads from its spool, and retries them if they raise.

Tracked files and images (``trackhook.File`` / ``trackhook.Image``) are copied into a folder beside
the JSON-lines file (``values.jsonl`` -> ``values.files/``), named by their SHA-256, so that a
retry copies nothing twice; their line names the copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

import trackhook

__all__ = ["JsonLinesConfig", "JsonLinesTracker"]


class JsonLinesConfig(BaseModel):
    """The settings under ``config:`` in ``trackhook.yaml``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    path: str = "trackhook-values.jsonl"


class JsonLinesTracker:
    """One line per hook call: ``{"event": ..., "run_id": ..., ...}``."""

    config_model = JsonLinesConfig

    def __init__(self, config: JsonLinesConfig) -> None:
        self.path = Path(config.path)
        self.files = self.path.with_suffix(".files")

    def _write(self, **line: Any) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    @trackhook.hookimpl
    def trackhook_open_run(self, run: trackhook.RunInfo) -> dict[str, str]:
        self._write(event="open", run_id=run.run_id, tag=run.tag)
        return {"file": str(self.path.resolve())}

    @trackhook.hookimpl
    def trackhook_log_metric(
        self, run: trackhook.RunInfo, key: str, value: float, step: int
    ) -> None:
        self._write(event="metric", run_id=run.run_id, key=key, value=value, step=step)

    @trackhook.hookimpl
    def trackhook_log_param(
        self, run: trackhook.RunInfo, key: str, value: trackhook.ParamValue, step: int
    ) -> None:
        self._write(event="param", run_id=run.run_id, key=key, value=value, step=step)

    @trackhook.hookimpl
    def trackhook_log_file(self, run: trackhook.RunInfo, file: trackhook.FileRecord) -> None:
        # file.path is trackhook's own copy: read it, never move or change it.
        copy = self.files / file.sha256
        if not copy.exists():
            self.files.mkdir(parents=True, exist_ok=True)
            partial = copy.with_suffix(".partial")
            shutil.copyfile(file.path, partial)
            partial.replace(copy)  # a copy cut short by a crash is never taken for a whole one
        self._write(
            event="file",
            run_id=run.run_id,
            key=file.key,
            step=file.step,
            name=file.name,
            kind=file.kind,
            sha256=file.sha256,
            size=file.size,
            copy=str(copy.resolve()),
        )

    @trackhook.hookimpl
    def trackhook_close_run(self, run: trackhook.RunInfo, status: trackhook.Status) -> None:
        self._write(event="close", run_id=run.run_id, status=status)
