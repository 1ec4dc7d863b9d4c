"""The complete examples of the integration docs (``examples/integrations``) run as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[3] / "examples" / "integrations"


@pytest.mark.parametrize(
    "example",
    ["lightning_train.py", "transformers_train.py", "accelerate_train.py", "keras_train.py"],
)
def test_the_documented_example_trains_and_closes_its_run(example: str, tmp_path: Path) -> None:
    environment = {**os.environ, "KERAS_BACKEND": "torch", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_log,) = (tmp_path / ".run_log_store").glob("*.json")
    assert json.loads(run_log.read_text())["status"] == "SUCCESS"
