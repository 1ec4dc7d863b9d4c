"""A tracker that appends what it receives to a JSON-lines file: visible across processes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

import trackhook


class SinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    fail_first: int = 0
    """Fail this many log_batch calls (counted in a file next to ``path``), then work."""
    block_seconds: float = 0.0
    """Sleep this long in every log_batch call: a slow tracker."""


class SinkTracker:
    config_model = SinkSettings

    def __init__(self, config: SinkSettings) -> None:
        self.config = config
        self.path = Path(config.path)

    def _append(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(line) + "\n" for line in lines)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    @trackhook.hookimpl
    def trackhook_log_batch(self, run: trackhook.RunInfo, metrics: Any, params: Any) -> None:
        if self.config.block_seconds:
            time.sleep(self.config.block_seconds)
        counter = self.path.with_suffix(".failures")
        failures = int(counter.read_text()) if counter.exists() else 0
        if failures < self.config.fail_first:
            counter.write_text(str(failures + 1))
            raise ConnectionError(f"sink unavailable (failure {failures + 1})")
        self._append(
            [_line("metric", m.key, m.value, m.step) for m in metrics]
            + [_line("param", p.key, p.value, p.step) for p in params]
        )

    @trackhook.hookimpl
    def trackhook_close_run(self, run: trackhook.RunInfo, status: str) -> None:
        self._append([{"closed": run.run_id, "status": status}])


def _line(kind: str, key: str, value: Any, step: int) -> dict[str, Any]:
    return {"kind": kind, "key": key, "value": value, "step": step, "pid": os.getpid()}


def read_sink(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def values_of(path: Path) -> list[tuple[str, Any, int]]:
    return [
        (r["key"], r["value"], r["step"])
        for r in read_sink(path)
        if "key" in r and r.get("kind") != "file"
    ]


def closes_of(path: Path) -> list[str]:
    return [r["status"] for r in read_sink(path) if "closed" in r]


class FileSinkTracker(SinkTracker):
    """A sink that also takes files: one line per file, with the SHA-256 of what it read."""

    @trackhook.hookimpl
    def trackhook_log_file(self, run: trackhook.RunInfo, file: trackhook.FileRecord) -> None:
        counter = self.path.with_suffix(".failures")
        failures = int(counter.read_text()) if counter.exists() else 0
        if failures < self.config.fail_first:
            counter.write_text(str(failures + 1))
            raise ConnectionError(f"sink unavailable (failure {failures + 1})")
        content = file.path.read_bytes()
        self._append(
            [
                {
                    "kind": "file",
                    "key": file.key,
                    "step": file.step,
                    "name": file.name,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "recorded_sha256": file.sha256,
                    "size": len(content),
                    "pid": os.getpid(),
                }
            ]
        )


def files_of(path: Path) -> list[dict[str, Any]]:
    return [line for line in read_sink(path) if line.get("kind") == "file"]
