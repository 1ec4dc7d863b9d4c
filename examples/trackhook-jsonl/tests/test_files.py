"""Files and images tracked with ``track_this`` reach the plugin: a line each, and a copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import trackhook


def test_a_tracked_file_is_a_line_and_a_copy_beside_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "epoch-5.pt"
    checkpoint.write_bytes(b"weights of epoch 5")
    config = {"experiment_tracker": {"type": "jsonl", "config": {"path": "values.jsonl"}}}
    with trackhook.start_run(run_id="files-1", config=config):
        trackhook.track_this(step=5, checkpoint=trackhook.File(checkpoint))
        checkpoint.write_bytes(b"overwritten after tracking")
    lines = [json.loads(line) for line in Path("values.jsonl").read_text().splitlines()]
    (line,) = [line for line in lines if line["event"] == "file"]
    digest = hashlib.sha256(b"weights of epoch 5").hexdigest()
    assert line["key"] == "checkpoint"
    assert (line["step"], line["name"], line["kind"], line["sha256"]) == (
        5,
        "epoch-5.pt",
        "file",
        digest,
    )
    assert Path(line["copy"]) == tmp_path / "values.files" / digest
    assert Path(line["copy"]).read_bytes() == b"weights of epoch 5"
