"""trackhook's conformance suite, run against this plugin as installed (through its entry point)."""

from __future__ import annotations

import json
from pathlib import Path

from trackhook import RunInfo
from trackhook.testing.conformance import ReportedRun, TrackerConformance


class TestJsonLinesConformance(TrackerConformance):
    tracker_type = "jsonl"

    def tracker_config(self, folder: Path) -> dict[str, str]:
        return {"path": str(folder / "values.jsonl")}

    def read_run(self, folder: Path, run: RunInfo) -> ReportedRun | None:
        path = folder / "values.jsonl"
        if not path.exists():
            return None
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        events = [event for event in events if event["run_id"] == run.run_id]
        if not events:
            return None
        reported = ReportedRun()
        for event in events:
            if event["event"] == "open":
                reported.tag = event["tag"]
            elif event["event"] == "metric":
                reported.metrics.setdefault(event["key"], {})[event["step"]] = event["value"]
            elif event["event"] == "param":
                reported.params[event["key"]] = event["value"]
            elif event["event"] == "file":
                stored = Path(event["copy"]).read_bytes()
                reported.files = reported.files or {}
                reported.files.setdefault(event["key"], {})[event["step"]] = stored
            elif event["event"] == "close":
                reported.status = event["status"]
        return reported
