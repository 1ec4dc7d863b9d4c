"""trackhook's quickstart: a simulated training run, tracked with the API and environment variables.

Run it with ``python quickstart.py`` where trackhook is installed. Without a ``trackhook.yaml``
the values go to the run log only; add one to send them to MLflow or W&B too. ``nox -s demo`` runs
the same training (``train`` below) with MLflow and TensorBoard configured: see ``demo.py``.
"""

from __future__ import annotations

import json
import math
import os
import random

from pydantic import BaseModel, Field

import trackhook


class Optimiser(BaseModel):
    name: str
    learning_rate: float = Field(alias="learningRate")


def train(epochs: int) -> None:
    random.seed(7)
    trackhook.track_this(optimiser=Optimiser(name="adam", learningRate=3e-4), epochs=epochs)
    for epoch in range(1, epochs + 1):
        loss = math.exp(-epoch / 3) + random.uniform(0, 0.05)
        accuracy = 1 - loss / 2
        trackhook.track_this(step=epoch, loss=round(loss, 4), accuracy=round(accuracy, 4))
    trackhook.track_this(step=epochs, checkpoint=f"checkpoints/epoch-{epochs}.pt")
    # what a shell task would do: export TRACKHOOK_TRACK_<key>[_STEP_<n>]=<value>
    os.environ["TRACKHOOK_TRACK_gpu_hours"] = "0.25"
    os.environ["TRACKHOOK_TRACK_eval_STEP_5"] = '{"f1": 0.81, "split": "test"}'


def show(run: trackhook.Run) -> None:
    log = json.loads(run.run_log_path.read_text())
    print(f"run {log['run_id']}  tag {log['tag']!r}  status {log['status']}")
    print(f"run log: {run.run_log_path}\n")
    print(f"{'key':<14} {'step':>4}  value")
    print(f"{'-' * 14} {'-' * 4}  {'-' * 40}")
    for key, value in log["user_defined_metrics"].items():
        by_step = value if isinstance(value, dict) and all(k.isdigit() for k in value) else None
        for step, inner in (by_step or {"0": value}).items():
            print(f"{key:<14} {step:>4}  {json.dumps(inner)}")
    for tracker in log["experiment_trackers"]:
        delivery = tracker["delivery"]
        print(
            f"\ntracker {tracker['name']!r}: delivered {delivery['delivered']}, "
            f"undelivered {delivery['undelivered']}"
        )


if __name__ == "__main__":
    with trackhook.start_run(tag="quickstart") as run:
        train(epochs=5)
    show(run)
