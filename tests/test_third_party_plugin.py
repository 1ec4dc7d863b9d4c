"""A third-party tracker, installed as a real distribution and found through its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("example_plugin_installed")

CONFIG = """
experiment_tracker:
  type: jsonl
  config:
    path: values.jsonl
"""

SCRIPT = """
import trackhook
with trackhook.start_run(run_id="plugin-run", tag="exp") as run:
    trackhook.track_this(step=1, loss=0.5, name="adam", nested={"a": 2})
print(run.trackers)
"""


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_plugin_is_selected_by_trackhook_yaml_and_receives_every_value(tmp_path: Path) -> None:
    (tmp_path / "trackhook.yaml").write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "['jsonl']"
    events = read_lines(tmp_path / "values.jsonl")
    assert [e["event"] for e in events] == ["open", "metric", "param", "metric", "close"]
    assert {
        (e["key"], e["value"], e["step"]) for e in events if e["event"] != "open" and "key" in e
    } == {("loss", 0.5, 1), ("nested.a", 2, 1), ("name", "adam", 1)}
    assert events[-1]["status"] == "SUCCESS"
    log = json.loads((tmp_path / ".run_log_store" / "plugin-run.json").read_text())
    assert log["experiment_trackers"][0]["run"]["file"].endswith("values.jsonl")


def test_the_plugin_is_listed_among_installed_trackers() -> None:
    from trackhook.registry import installed_trackers

    assert {"jsonl", "mlflow", "wandb", "do-nothing"} <= set(installed_trackers())


def test_an_invalid_plugin_field_names_the_file_the_tracker_and_the_field(tmp_path: Path) -> None:
    import trackhook

    (tmp_path / "trackhook.yaml").write_text(CONFIG.replace("path:", "paht:"))
    with pytest.raises(trackhook.ConfigError) as caught:
        trackhook.start_run().__enter__()
    assert "trackhook.yaml" in str(caught.value)
    assert "'jsonl'" in str(caught.value)
    assert "'paht'" in str(caught.value)


def test_fan_out_to_the_plugin_and_the_run_log(tmp_path: Path) -> None:
    import trackhook

    config = {
        "experiment_trackers": [
            {"type": "jsonl", "name": "first", "config": {"path": "first.jsonl"}},
            {"type": "jsonl", "name": "second", "config": {"path": "second.jsonl"}},
        ]
    }
    with trackhook.start_run(config=config) as run:
        for step in range(10):
            trackhook.track_this(step=step, loss=1.0 / (step + 1))
    first = read_lines(tmp_path / "first.jsonl")
    second = read_lines(tmp_path / "second.jsonl")
    assert first == second
    assert len([e for e in first if e["event"] == "metric"]) == 10
    assert len(run.user_defined_metrics["loss"]) == 10
