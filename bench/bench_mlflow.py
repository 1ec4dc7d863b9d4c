"""Benchmark: 2,000 values into MLflow, directly and through trackhook.

Run it in an environment with the core, trackhook-mlflow and the full ``mlflow`` package (the
``bench`` nox session builds one): ``nox -s bench``, or ``python bench/bench_mlflow.py``.

For a real ``mlflow server`` on 127.0.0.1 and for a sqlite store, it measures:

(a) direct ``mlflow.log_metric`` calls, one request per value;
(b) trackhook: ``track_this`` in a loop inside ``start_run``. Caller-side time is the loop;
    end-to-end time runs until the ``with`` block has exited, i.e. every value is stored in MLflow
    and the run is closed;
(c) ``MlflowClient.log_batch``, one call per 1,000 values (MLflow's per-request limit).

(a) and (c) are synchronous, so their caller-side and end-to-end times are the same. "Whole run"
also counts opening and closing the run (finding or creating the experiment, creating the run,
setting it terminated) for every variant: (b)'s end-to-end time necessarily includes its close and
part of its open, which (c)'s end-to-end time leaves out. Every variant reads its values back to
check that all 2,000 are stored. Nothing here leaves 127.0.0.1.

Against the server it also counts the HTTP requests of each variant's whole run, read from the
server's access log (uvicorn writes one line per request), by endpoint.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from _timing import alternated
from mlflow import MlflowClient
from mlflow.entities import Metric

import trackhook

VALUES = 2000
BATCH = 1000
ROUNDS = 5
KEY = "loss"


@dataclass
class Timing:
    caller: float
    end_to_end: float
    whole_run: float
    requests: Counter[str] = field(default_factory=Counter)
    """HTTP requests of the whole run, by endpoint (none for a local store)."""


class AccessLog:
    """The tracking server's API requests, counted from its access log; none for a local store."""

    _REQUEST = re.compile(r'"(?:GET|POST|PATCH|DELETE|PUT) /api/[\d.]+/mlflow/([^ ?"]+)')

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path is not None else 0

    def since(self, mark: int) -> Counter[str]:
        """Requests by endpoint (``runs/log-batch``) logged after ``mark``."""
        if self.path is None:
            return Counter()
        with self.path.open("rb") as log:
            log.seek(mark)
            text = log.read().decode(errors="replace")
        return Counter(self._REQUEST.findall(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=VALUES)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternated rounds of (b), (c)")
    parser.add_argument(
        "--skip-direct", action="store_true", help="leave out (a), which takes minutes"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackhook-bench-") as folder:
        root = Path(folder)
        os.chdir(root)  # run log store and sqlite artifacts stay in the temporary folder
        server, url = _start_server(root / "server")
        try:
            stores = {
                "mlflow server": (url, AccessLog(root / "server" / "server.log")),
                "sqlite store": (f"sqlite:///{root / 'bench.db'}", AccessLog(None)),
            }
            print(f"{arguments.values} values per variant; mlflow {mlflow.__version__}\n")
            for name, (uri, log) in stores.items():
                _bench_store(name, uri, log, arguments)
        finally:
            _stop_server(server)
    return 0


def _bench_store(name: str, uri: str, log: AccessLog, arguments: argparse.Namespace) -> None:
    values = arguments.values
    client = MlflowClient(uri)
    client.search_experiments()  # build MLflow's store (and its sqlite tables) before timing
    timings: dict[str, Timing] = {}
    if not arguments.skip_direct:  # a minute against a server: once is enough
        timings["(a) mlflow.log_metric"] = _direct(uri, client, log, values)
    rounds: dict[str, list[Timing]] = {"b": [], "c": []}
    for number in range(arguments.rounds):
        # the store slows as it fills: neither side should always go last
        order: list[tuple[str, Callable[[], Timing]]] = [
            ("b", lambda: _trackhook(uri, client, log, values)),
            ("c", lambda: _batched(client, log, values)),
        ]
        for side, measure in alternated(order, number):
            rounds[side].append(measure())
    timings["(b) trackhook"] = _median(rounds["b"])
    timings["(c) MlflowClient.log_batch"] = _median(rounds["c"])
    print(
        f"== {name} ({uri.split('://')[0]}); (b) and (c): medians of {arguments.rounds} "
        "alternated rounds"
    )
    print(f"{'variant':<30}{'caller-side':>14}{'end-to-end':>14}{'whole run':>14}")
    for variant, timing in timings.items():
        print(
            f"{variant:<30}{timing.caller:>13.4f}s{timing.end_to_end:>13.4f}s"
            f"{timing.whole_run:>13.4f}s"
        )
    b, c = timings["(b) trackhook"], timings["(c) MlflowClient.log_batch"]
    a = timings.get("(a) mlflow.log_metric")
    if a is not None:
        print(
            f"caller-side  (b)/(a) = {b.caller / a.caller:.5f}  ({a.caller / b.caller:,.0f}x less)"
        )
        print(f"end-to-end   (b)/(a) = {b.end_to_end / a.end_to_end:.3f}")
    print(f"end-to-end   (b)/(c) = {b.end_to_end / c.end_to_end:.3f}")
    print(f"whole run    (b)/(c) = {b.whole_run / c.whole_run:.3f}")
    # each round's (b) and (c) ran back to back: their ratio moves less with the machine's load
    paired = statistics.median(
        mine.whole_run / theirs.whole_run
        for mine, theirs in zip(rounds["b"], rounds["c"], strict=True)
    )
    print(f"whole run    (b)/(c), median of the rounds' own ratios = {paired:.3f}")
    for variant, measured in (
        ("(a)", [a] if a is not None else []),
        ("(b)", rounds["b"]),
        ("(c)", rounds["c"]),
    ):
        _print_requests(variant, [timing.requests for timing in measured])
    print()


def _print_requests(variant: str, counted: list[Counter[str]]) -> None:
    """HTTP requests of one whole run: the first round's, and the last's when the process-wide
    caches filled by an earlier round make it differ."""
    if any(counted):
        first, last = counted[0], counted[-1]
        shown = [("per run", first)] if first == last else [("first", first), ("later", last)]
        for label, counter in shown:
            detail = ", ".join(f"{endpoint} {count}" for endpoint, count in sorted(counter.items()))
            print(f"requests {variant} {label}: {sum(counter.values())}  ({detail})")


def _median(timings: list[Timing]) -> Timing:
    return Timing(
        statistics.median(t.caller for t in timings),
        statistics.median(t.end_to_end for t in timings),
        statistics.median(t.whole_run for t in timings),
    )


def _direct(uri: str, client: MlflowClient, log: AccessLog, values: int) -> Timing:
    mlflow.set_tracking_uri(uri)
    mark = log.mark()
    opened = time.perf_counter()
    mlflow.set_experiment("bench-direct")
    with mlflow.start_run() as run:
        started = time.perf_counter()
        for step in range(values):
            mlflow.log_metric(KEY, float(step), step=step)
        elapsed = time.perf_counter() - started
    whole = time.perf_counter() - opened
    requests = log.since(mark)
    mlflow.set_tracking_uri(None)
    _check(client, run.info.run_id, values)
    return Timing(elapsed, elapsed, whole, requests)


def _trackhook(uri: str, client: MlflowClient, log: AccessLog, values: int) -> Timing:
    run_id = f"bench-{time.time_ns()}"
    config = {"experiment_tracker": {"type": "mlflow", "config": {"tracking_uri": uri}}}
    mark = log.mark()
    opened = time.perf_counter()
    with trackhook.start_run(run_id, "bench-trackhook", config=config):
        started = time.perf_counter()
        for step in range(values):
            trackhook.track_this(step=step, loss=float(step))
        caller = time.perf_counter() - started
    end_to_end = time.perf_counter() - started
    whole = time.perf_counter() - opened
    requests = log.since(mark)
    experiment = client.get_experiment_by_name("bench-trackhook")
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{run_id}'"
    )
    _check(client, run.info.run_id, values)
    return Timing(caller, end_to_end, whole, requests)


def _batched(client: MlflowClient, log: AccessLog, values: int) -> Timing:
    mark = log.mark()
    opened = time.perf_counter()
    experiment = client.get_experiment_by_name("bench-batch")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("bench-batch")
    )
    run = client.create_run(experiment_id)
    started = time.perf_counter()
    for first in range(0, values, BATCH):
        now = int(time.time() * 1000)
        metrics = [
            Metric(KEY, float(step), now, step) for step in range(first, min(first + BATCH, values))
        ]
        client.log_batch(run.info.run_id, metrics=metrics, synchronous=True)
    elapsed = time.perf_counter() - started
    client.set_terminated(run.info.run_id)
    whole = time.perf_counter() - opened
    requests = log.since(mark)
    _check(client, run.info.run_id, values)
    return Timing(elapsed, elapsed, whole, requests)


def _check(client: MlflowClient, mlflow_run_id: str, values: int) -> None:
    stored = len(client.get_metric_history(mlflow_run_id, KEY))
    if stored != values:
        raise SystemExit(f"only {stored} of {values} values are stored in run {mlflow_run_id}")


def _start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    folder.mkdir(parents=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # `mlflow server` runs uvicorn as a child: stop the whole group
    )
    _wait(lambda: _healthy(url), process, folder / "server.log")
    return process, url


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_server(process)
            raise SystemExit(f"mlflow server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.25)


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
