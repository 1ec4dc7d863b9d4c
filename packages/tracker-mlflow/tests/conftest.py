"""Real MLflow stores for the tests: one tracking server per session, and a sqlite store.

Nothing of MLflow is mocked: values go through the tracker into a store and are read back with
``MlflowClient``. Every test gets its own working directory (where the run log store lives) and
unique experiment and run names, so the session-wide stores can be shared.

The helpers are fixtures because the tests run with ``--import-mode=importlib``, where a test
module cannot import a module beside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import trackhook

_START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MlflowServer:
    """One ``mlflow server`` process group with a sqlite backend in ``folder``; restartable."""

    def __init__(self, folder: Path, port: int | None = None, *, proxied: bool = False) -> None:
        self.folder = folder
        self.proxied = proxied
        """Serve artifacts (``mlflow-artifacts:/``, uploaded over HTTP) instead of letting clients
        write them into the server's artifact folder themselves."""
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        log = (self.folder / f"server-{self._starts}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'server.db'}",
            *(
                ["--artifacts-destination", str(self.folder / "served-artifacts")]
                if self.proxied
                else ["--default-artifact-root", str(self.folder / "artifacts")]
            ),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # A process group of its own: `mlflow server` runs uvicorn as a child process.
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {_START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        except ProcessLookupError:
            process.wait(timeout=15)
        # uvicorn may outlive the CLI by a moment; make sure nothing of the group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        logs = sorted(self.folder.glob("server-*.log"))
        return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no log)"


def _mlflow_config(tracking_uri: str, **settings: Any) -> dict[str, Any]:
    """A trackhook configuration that sends to MLflow at ``tracking_uri``, delivering quickly."""
    return {
        "experiment_tracker": {
            "type": "mlflow",
            "config": {"tracking_uri": tracking_uri, **settings.pop("mlflow", {})},
            **settings.pop("tracker", {}),
        },
        "delivery": {"interval": 0.05, "flush_timeout": 30.0, **settings},
    }


def _find_run(client: MlflowClient, experiment: str, run_name: str) -> Any:
    """The one MLflow run named ``run_name`` in ``experiment``."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"
    )
    assert len(runs) == 1, f"{len(runs)} runs named {run_name!r} in {experiment!r}"
    return runs[0]


def _history(client: MlflowClient, run: Any, key: str) -> list[tuple[int, float]]:
    """A metric's (step, value) pairs in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxied_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server that proxies artifacts (``mlflow-artifacts:/``), as ``mlflow server`` does when
    no artifact root is given."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-proxied"), proxied=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("mlflow-sqlite")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # MLflow caches a store per URI and fixes its default artifact root (./mlruns) when the store
    # is first built: build it here, so that artifacts land in the tmp folder, not the checkout.
    previous = Path.cwd()
    os.chdir(folder)
    try:
        MlflowClient(uri).search_experiments()
    finally:
        os.chdir(previous)
    return uri


@pytest.fixture(params=["server", "sqlite"])
def tracking_uri(request: pytest.FixtureRequest) -> str:
    """Each mapping test runs against the tracking server and against the sqlite store."""
    if request.param == "server":
        server: MlflowServer = request.getfixturevalue("mlflow_server")
        return server.url
    uri: str = request.getfixturevalue("sqlite_uri")
    return uri


@pytest.fixture(params=["server", "proxied", "sqlite"])
def artifact_tracking_uri(request: pytest.FixtureRequest) -> str:
    """Tests of artifacts run against each way MLflow stores them: written by the client into
    the server's folder, uploaded to a server that proxies them, or in a local folder (sqlite)."""
    servers = {"server": "mlflow_server", "proxied": "proxied_mlflow_server"}
    if request.param in servers:
        server: MlflowServer = request.getfixturevalue(servers[request.param])
        return server.url
    uri: str = request.getfixturevalue("sqlite_uri")
    return uri


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRACKHOOK_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)


@pytest.fixture
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh (run_id, tag) pair: experiments and runs never collide between tests."""
    unique = uuid.uuid4().hex[:8]
    return f"run-{unique}", f"exp-{request.node.originalname}-{unique}"


@pytest.fixture
def run_in_mlflow(
    tracking_uri: str, names: tuple[str, str]
) -> Callable[..., tuple[trackhook.Run, Any]]:
    """Run ``body`` inside ``start_run`` sending to MLflow; return the run and its MLflow run."""

    def run(body: Callable[[], None], **settings: Any) -> tuple[trackhook.Run, Any]:
        run_id, tag = names
        with trackhook.start_run(run_id, tag, config=_mlflow_config(tracking_uri, **settings)) as r:
            body()
        return r, _find_run(MlflowClient(tracking_uri), tag, run_id)

    return run


@pytest.fixture(scope="module")
def own_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server of the module's own, not started: for tests that stop and start it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-own"))
    yield server
    server.stop()


@pytest.fixture
def unused_port() -> int:
    return _free_port()


@pytest.fixture
def mlflow_config() -> Callable[..., dict[str, Any]]:
    return _mlflow_config


@pytest.fixture
def find_run() -> Callable[[MlflowClient, str, str], Any]:
    return _find_run


@pytest.fixture
def history() -> Callable[[MlflowClient, Any, str], list[tuple[int, float]]]:
    return _history
