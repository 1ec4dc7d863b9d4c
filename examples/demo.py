"""trackhook's demo: one simulated training run, delivered to real trackers at once (fan-out).

Run it with ``nox -s demo``, or ``python examples/demo.py [FOLDER]`` where trackhook,
trackhook-mlflow and the example plugin trackhook-jsonl are installed (trackhook-tensorboard too,
if you want TensorBoard's files). Everything it makes is in FOLDER (default ``trackhook-demo``):

- ``trackhook.yaml``, the configuration it writes and uses;
- ``mlflow.db``, an MLflow tracking store on sqlite: no server, nothing to sign up for;
- ``values.jsonl``, what the example plugin of the tutorial received;
- ``tensorboard/``, TensorBoard's event files, when trackhook-tensorboard is installed;
- ``.run_log_store/``, trackhook's own run log of the run.

It then prints the run as ``trackhook show`` does, and how to open it in each tracker's own UI.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml
from quickstart import train

import trackhook
from trackhook.cli import main as trackhook_command


def demo_config(folder: Path) -> dict[str, object]:
    """MLflow on sqlite and the tutorial's JSON-lines plugin; TensorBoard where it is installed.

    ``on_error: raise``: a tracker that fails must fail the demo (and its test), not leave its
    values for ``trackhook sync``.
    """
    trackers: list[dict[str, object]] = [
        {"type": "mlflow", "config": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}},
        {"type": "jsonl", "config": {"path": str(folder / "values.jsonl")}},
    ]
    if importlib.util.find_spec("trackhook_tensorboard") is not None:
        trackers.append({"type": "tensorboard", "config": {"log_dir": str(folder / "tensorboard")}})
    return {
        "experiment_trackers": [{**tracker, "on_error": "raise"} for tracker in trackers],
        "run_log_store": str(folder / ".run_log_store"),
    }


def write_config(folder: Path) -> Path:
    """The configuration as a file, so that ``trackhook --config`` finds the same run log store."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trackhook.yaml"
    path.write_text(yaml.safe_dump(demo_config(folder), sort_keys=False), encoding="utf-8")
    return path


def how_to_look(folder: Path, config: Path, run_id: str) -> str:
    lines = [
        "",
        "Look at the run in MLflow's UI (`mlflow ui` needs the full mlflow: pip install mlflow):",
        f"    mlflow ui --backend-store-uri sqlite:///{folder / 'mlflow.db'}",
        "  then open http://127.0.0.1:5000, experiment 'trackhook-demo'.",
    ]
    if (folder / "tensorboard").is_dir():
        lines += ["In TensorBoard:", f"    tensorboard --logdir {folder / 'tensorboard'}"]
    lines += [
        f"What the tutorial's JSON-lines plugin received: {folder / 'values.jsonl'}",
        "The run again, from the command line:",
        f"    trackhook --config {config} show {run_id}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "trackhook-demo").resolve()
    config = write_config(folder)
    with trackhook.start_run(tag="trackhook-demo", config=config) as run:
        train(epochs=5)
    print(f"Tracked run {run.run_id!r} into {', '.join(run.trackers)} at once.\n")
    code = trackhook_command(["--plain", "--config", str(config), "show", run.run_id])
    print(how_to_look(folder, config, run.run_id))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
