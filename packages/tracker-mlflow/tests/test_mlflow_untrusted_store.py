"""A run log planted in a store that others can write must not get the user's MLflow token.

``trackhook sync`` without a configuration rebuilds trackers from the run logs: a run log naming a
server the user never configured would otherwise receive ``Authorization: Bearer <token>`` from
``MLFLOW_TRACKING_TOKEN``. The server here is a real listener on 127.0.0.1 that records any
connection; mlflow is not mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TRACKHOOK = str(Path(sys.executable).parent / "trackhook")
TOKEN = "token-of-the-user-7f3a9c"


class Listener:
    """A TCP server on 127.0.0.1 that keeps the first bytes of every connection it accepts."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2.0)
                try:
                    self.received.append(connection.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def plant_run_log(store: Path, port: int) -> None:
    """A closed run whose run log names an MLflow server, in a store anyone can write to."""
    store.mkdir()
    store.chmod(0o777)
    run_log = store / "planted.json"
    run_log.write_text(
        json.dumps(
            {
                "run_id": "planted",
                "tag": "innocent",
                "status": "SUCCESS",
                "experiment_trackers": [
                    {
                        "name": "mlflow",
                        "type": "mlflow",
                        "config": {"tracking_uri": f"http://127.0.0.1:{port}"},
                    }
                ],
            }
        )
    )
    run_log.chmod(0o666)


def test_sync_without_configuration_does_not_contact_a_server_named_by_a_planted_run_log(
    tmp_path: Path, listener: Listener
) -> None:
    plant_run_log(tmp_path / ".run_log_store", listener.port)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKHOOK_", "MLFLOW_"))},
        "MLFLOW_TRACKING_TOKEN": TOKEN,
    }
    result = subprocess.run(
        [TRACKHOOK, "sync", "--timeout", "5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert listener.received == [], "the planted server was contacted"
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "can be written by other users (mode 777)" in message
    assert "does not contact the trackers it names ('mlflow')" in message
    assert "trackhook sync --config FILE" in message
    assert TOKEN not in result.stdout + result.stderr
