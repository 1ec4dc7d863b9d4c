"""``import trackhook`` stays cheap (issue 13, part 4): the markers, the errors and the version load
at once; the engine and the heavy modules it needs load when a run opens, not before.

Whether a module is imported is checked, not how long the import takes: timings belong in
``bench/bench_core.py``.
"""

from __future__ import annotations

import subprocess
import sys

LOADED_WHEN_A_RUN_OPENS = (
    # the engine
    "trackhook.api",
    "trackhook.run",
    "trackhook.delivery",
    "trackhook.store",
    "trackhook.index",
    "trackhook.runlog",
    "trackhook.config",
    "trackhook.limits",
    "trackhook.records",
    # the standard library modules the engine needs
    "sqlite3",
    "json",
    "datetime",
    "socket",
    "uuid",
    "secrets",
    "hashlib",
    "dataclasses",
    "pathlib",
    "threading",
    # third-party modules of configuration and of the adapters
    "pydantic",
    "yaml",
    "mlflow",
    "wandb",
)


def test_importing_trackhook_loads_neither_the_engine_nor_its_heavy_modules() -> None:
    script = (
        "import sys, trackhook\n"
        f"print(*(m for m in {LOADED_WHEN_A_RUN_OPENS!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == []
