"""Cross-package tests: they run in the ``tests-cross`` nox session, where the core and both
adapters are installed from their folders, and install the example plugin themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "trackhook-jsonl"


@pytest.fixture(scope="session")
def example_plugin_installed() -> None:
    """Install the example plugin into this environment, as a user would, from its folder."""
    uv = shutil.which("uv")
    command = (
        [uv, "pip", "install", "--quiet", "--python", sys.executable, str(EXAMPLE_PLUGIN)]
        if uv
        else [sys.executable, "-m", "pip", "install", "--quiet", str(EXAMPLE_PLUGIN)]
    )
    subprocess.run(command, check=True)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRACKHOOK_"):
            monkeypatch.delenv(name)
    yield
