"""A trackhook tracker that appends every value to a JSON-lines file.

It implements the per-value hooks, the simplest way to write a tracker; trackhook calls them from
a background thread, in batches it reads from its spool, and retries them if they raise.
"""

from __future__ import annotations

import json
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
    def trackhook_close_run(self, run: trackhook.RunInfo, status: trackhook.Status) -> None:
        self._write(event="close", run_id=run.run_id, status=status)
