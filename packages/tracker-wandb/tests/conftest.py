"""Real wandb, offline, confined to temporary folders, and a reader of what W&B wrote.

No network and nothing in the home folder: a session fixture points every W&B folder at a temporary
one. The tests assert on W&B's own transaction log (``run-<id>.wandb``), which is what
``wandb sync`` uploads, rather than on what the adapter believes it sent. That file is a ``:W&B``
header (4 bytes of magic, 2 of a second magic, 1 of version) followed by LevelDB's log framing:
32 KiB blocks of chunks, each with a 7-byte header (CRC-32C: 4, length: 2, little-endian, type: 1).
A record fits in one FULL chunk or spans FIRST, MIDDLE..., LAST chunks; a block's tail shorter
than a header is zero padding. Each record is a protobuf ``wandb_internal_pb2.Record``.

The reader lives here rather than in a module of its own because the repository runs pytest with
``--import-mode=importlib``, where test modules cannot import their neighbours.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from wandb.proto import wandb_internal_pb2

from trackhook import RunInfo
from trackhook_wandb import WandbConfig, WandbTracker, wandb_run_id

_FILE_HEADER = 7
_BLOCK = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRunFile:
    """The parts of one transaction log that the adapter is responsible for."""

    path: Path
    run: Any = None
    """The first ``RunRecord`` (run_id, project, display_name, resume...)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Every history row, internal ``_step``/``_runtime``/``_timestamp`` included."""
    config: dict[str, Any] = field(default_factory=dict)
    """The config after applying every update in order (W&B's own ``_wandb`` left out)."""
    metrics: list[Any] = field(default_factory=list)
    """``MetricRecord`` protobufs: what ``define_metric`` declared."""
    exit_code: int | None = None

    def rows_without_internals(self) -> list[dict[str, Any]]:
        """History rows without the keys W&B adds itself, for readable assertions."""
        return [
            {key: value for key, value in row.items() if not key.startswith("_")}
            for row in self.history
        ]

    def values_of(self, key: str) -> list[tuple[int, Any]]:
        """``(trackhook step, value)`` of ``key`` in history order."""
        return [(row["trackhook/step"], row[key]) for row in self.history if key in row]


def run_files(root: Path, wandb_id: str) -> list[Path]:
    """Every transaction log of W&B run ``wandb_id`` under ``root``, oldest first."""
    return sorted(root.rglob(f"run-{wandb_id}.wandb"), key=lambda path: path.parent.name)


def read_run_file(path: Path) -> WandbRunFile:
    """Parse the transaction log at ``path``."""
    result = WandbRunFile(path)
    for payload in _records(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run" and result.run is None:
            result.run = record.run
        elif kind == "history":
            result.history.append({_key(item): _value(item) for item in record.history.item})
        elif kind == "config":
            for item in record.config.update:
                if _key(item) != "_wandb":
                    result.config[_key(item)] = _value(item)
            for item in record.config.remove:
                result.config.pop(_key(item), None)
        elif kind == "metric":
            result.metrics.append(record.metric)
        elif kind == "exit":
            result.exit_code = record.exit.exit_code
    return result


def _records(data: bytes) -> list[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log: the file does not start with ':W&B'")
    records: list[bytes] = []
    pending = b""
    position = _FILE_HEADER
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:
            position += left_in_block
            continue
        _crc, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        start = position + _CHUNK_HEADER.size
        chunk = data[start : start + length]
        position = start + length
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            records.append(pending + chunk)
            pending = b""
        elif kind == 0 and length == 0:  # zero padding at the end of a block
            position += left_in_block - _CHUNK_HEADER.size
        else:
            raise ValueError(f"unknown chunk type {kind} at byte {position}")
    return records


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _value(item: Any) -> Any:
    return json.loads(item.value_json, parse_constant=_constant)


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


_WANDB_VARIABLES_TO_CLEAR = (
    "WANDB_API_KEY",
    "WANDB_BASE_URL",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "WANDB_RUN_ID",
    "WANDB_RESUME",
    "WANDB_RUN_GROUP",
    "WANDB_JOB_TYPE",
    "WANDB_TAGS",
    "WANDB_NAME",
    "WANDB_NOTES",
)


@pytest.fixture(scope="session", autouse=True)
def _offline_wandb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Session-wide because wandb starts one service process per Python process and reads its
    # environment once; every test's runs share it.
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in _WANDB_VARIABLES_TO_CLEAR:
            patch.delenv(name, raising=False)
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("WANDB_ERROR_REPORTING", "false")
        patch.setenv("WANDB_DISABLE_CODE", "true")
        patch.setenv("WANDB_DIR", str(home / "runs"))
        patch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
        patch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
        patch.setenv("WANDB_DATA_DIR", str(home / "data"))
        patch.setenv("WANDB_ARTIFACT_DIR", str(home / "artifacts"))
        patch.setenv("NETRC", str(home / "netrc"))
        os.makedirs(home / "runs", exist_ok=True)
        yield


_counter = itertools.count()
_FINISHED_FILE_TIMEOUT = 30.0


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    """A run_id unique in the session, readable in failure messages."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{next(_counter)}"


@pytest.fixture
def make_tracker(tmp_path: Path) -> Callable[..., WandbTracker]:
    """Build a tracker writing offline runs under ``tmp_path`` unless told otherwise."""

    def make(**fields: object) -> WandbTracker:
        settings: dict[str, object] = {"mode": "offline", "dir": str(tmp_path), **fields}
        return WandbTracker(WandbConfig.model_validate(settings))

    return make


@pytest.fixture
def read_run(tmp_path: Path) -> Callable[..., WandbRunFile]:
    """Read back the (latest, or ``index``-th) transaction log of a trackhook run."""

    def read(run: RunInfo | str, index: int = -1, root: Path | None = None) -> WandbRunFile:
        trackhook_run_id = run.run_id if isinstance(run, RunInfo) else run
        folder = root or tmp_path
        # run.finish() returns before W&B's service has written the file: wait for the exit record.
        deadline = time.monotonic() + _FINISHED_FILE_TIMEOUT
        while True:
            files = run_files(folder, wandb_run_id(trackhook_run_id))
            if files and index < len(files) and -len(files) <= index:
                logged = read_run_file(files[index])
                if logged.exit_code is not None:
                    return logged
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no finished transaction log #{index} of {trackhook_run_id!r} under {folder} "
                    f"after {_FINISHED_FILE_TIMEOUT} s (found: {files})"
                )
            time.sleep(0.02)

    return read
