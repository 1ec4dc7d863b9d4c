"""What installing the packages promises: light imports, console script, pytest plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECK_IMPORTS = """
import sys
import trackhook, trackhook_mlflow, trackhook_wandb
heavy = sorted(name for name in ("mlflow", "wandb") if name in sys.modules)
print(",".join(heavy) or "none")
"""


def test_importing_trackhook_and_both_adapters_imports_neither_mlflow_nor_wandb() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "none"


def test_importing_trackhook_does_not_import_pydantic_or_yaml() -> None:
    script = "import sys, trackhook; print([m for m in ('pydantic', 'yaml') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]"


def test_the_console_script_syncs_and_lists_runs(tmp_path: Path) -> None:
    script = (
        "import trackhook\n"
        "with trackhook.start_run(run_id='cli-run', tag='t'):\n"
        "    trackhook.track_this(x=1.5)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    trackhook = str(Path(sys.executable).parent / "trackhook")
    sync = subprocess.run([trackhook, "sync"], check=True, capture_output=True, text=True)
    assert "cli-run: delivered" in sync.stdout
    runs = subprocess.run([trackhook, "runs"], check=True, capture_output=True, text=True)
    assert "cli-run" in runs.stdout
    shown = subprocess.run(
        [trackhook, "show", "cli-run", "--json"], check=True, capture_output=True, text=True
    )
    assert json.loads(shown.stdout)["user_defined_metrics"] == {"x": 1.5}


def test_the_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "trackhook.yaml").write_text("experiment_tracker:\n  type: nosuch\n")
    trackhook = str(Path(sys.executable).parent / "trackhook")
    (tmp_path / ".run_log_store").mkdir()
    (tmp_path / ".run_log_store" / "r.json").write_text(
        json.dumps({"run_id": "r", "status": "SUCCESS", "tag": ""})
    )
    result = subprocess.run([trackhook, "sync"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("trackhook: error:")
    assert "Traceback" not in result.stderr
    assert "nosuch" in result.stderr


def test_every_first_party_package_comes_from_the_checkout_not_an_index() -> None:
    from importlib.metadata import distribution

    root = Path(__file__).parent.parent.resolve()
    for name in ("trackhook", "trackhook-mlflow", "trackhook-wandb", "trackhook-tensorboard"):
        direct_url = distribution(name).read_text("direct_url.json")
        assert direct_url is not None, f"{name} was installed from an index"
        url = json.loads(direct_url)["url"]
        assert url.startswith("file://"), url
        assert Path(url.removeprefix("file://")).resolve().is_relative_to(root), url
