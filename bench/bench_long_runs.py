"""Long runs in bounded memory: what a run of millions of values costs in memory and at close.

Each measurement runs in a child process of its own: ``VALUES`` values, ten a call, with the
do-nothing tracker, in a fresh run log store. A thread samples the process's resident memory
(``VmRSS``) every 10 ms; the figure is its peak over the memory right after the run opened, while
tracking and while closing. Nothing here is asserted; the figures go in docs/benchmarks.md.

    python bench/bench_long_runs.py                  # 5 M values
    python bench/bench_long_runs.py 50000000         # 50 M values (minutes)
    python bench/bench_long_runs.py 2000000 --source /path/to/an/older/trackhook/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, threading, time
import trackhook

values, per_call = int(sys.argv[1]), 10

def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

peak = [0]
stop = threading.Event()

def sample() -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.01)

keys = [f"metric_{n}" for n in range(per_call)]
config = {"experiment_trackers": [{"type": "do-nothing"}]}
run = trackhook.start_run("long", config=config)
run.__enter__()
start = rss()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
began = time.perf_counter()
for step in range(values // per_call):
    trackhook.track_this(step=step, **{key: step * 0.001 for key in keys})
tracked = time.perf_counter()
at_close = rss()
run.__exit__(None, None, None)
closed = time.perf_counter()
stop.set()
sampler.join()
peak[0] = max(peak[0], rss())
print(json.dumps({
    "values": values,
    "tracking_s": round(tracked - began, 1),
    "close_s": round(closed - tracked, 2),
    "rss_at_start_mb": round(start / 2**20),
    "before_close_over_start_mb": round((at_close - start) / 2**20),
    "peak_over_start_mb": round((peak[0] - start) / 2**20),
}))
"""


def measure(values: int, source: str | None) -> dict[str, object]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    with tempfile.TemporaryDirectory(prefix="trackhook-long-") as folder:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(values)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        log = os.path.join(folder, ".run_log_store", "long.json")
        size = os.path.getsize(log)
    figures: dict[str, object] = json.loads(result.stdout)
    figures["run_log_mb"] = round(size / 2**20)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("values", nargs="?", type=int, default=5_000_000)
    parser.add_argument(
        "--source", help="a trackhook source folder to measure instead of the installed one"
    )
    arguments = parser.parse_args()
    print(json.dumps(measure(arguments.values, arguments.source)))


if __name__ == "__main__":
    main()
