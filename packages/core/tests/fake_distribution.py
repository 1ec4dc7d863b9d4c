"""Installing a throw-away distribution with entry points onto ``sys.path``, for discovery tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def install(
    root: Path, monkeypatch: pytest.MonkeyPatch, name: str, modules: dict[str, str], entry: str
) -> None:
    """Write ``modules`` and a ``<name>.dist-info`` with ``entry`` in ``trackhook.trackers``."""
    site = root / "site"
    site.mkdir(exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[trackhook.trackers]\n{entry}\n")
    (info / "top_level.txt").write_text("\n".join(modules) + "\n")
    monkeypatch.syspath_prepend(str(site))
    for module in modules:
        sys.modules.pop(module, None)
