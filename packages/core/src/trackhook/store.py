"""The run log store on disk: where each run's log, spool and delivery positions live.

::

    .run_log_store/
      <run_id>.json                        the run log (strict JSON), written at open and at close
      <run_id>.rank-<r>.json               the run log of rank r > 0 in distributed training
      <run_id>/spool/[rank<r>-]<host>-<pid>-<n>.jsonl   every tracked value, one file a process
      <run_id>/delivery/<tracker>/<spool>.offset   how far that tracker has received that file
      <run_id>/delivery/<tracker>/<spool>.lock     held by the process delivering that file
      <run_id>/delivery/<tracker>/open.lock        serialises opening the run across processes
      <run_id>/delivery/<tracker>/closed           the status the run was closed with, once closed

The spool is JSON lines rather than SQLite because appending a line to a buffered file is the
cheapest durable write there is (``track_this`` stays within a few microseconds), each process owns
its file so processes never contend for a lock, and a reader needs nothing but ``open``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RunStore",
    "SpoolEntry",
    "SpoolWriter",
    "TrackerPositions",
    "iter_spool",
    "read_spool",
    "spool_rank",
]

_READ_CHUNK = 1 << 20


class RunStore:
    """Paths of one run log store folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def run_log_path(self, run_id: str, rank: int | None = None) -> Path:
        suffix = f".rank-{rank}" if rank else ""
        return self.root / f"{run_id}{suffix}.json"

    def spool_dir(self, run_id: str) -> Path:
        return self.root / run_id / "spool"

    def new_spool_path(self, run_id: str, rank: int | None = None) -> Path:
        prefix = f"rank{rank}-" if rank is not None else ""
        name = f"{prefix}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        return self.spool_dir(run_id) / name

    def spool_files(self, run_id: str) -> list[Path]:
        folder = self.spool_dir(run_id)
        return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    def positions(self, run_id: str, tracker: str) -> TrackerPositions:
        return TrackerPositions(self.root / run_id / "delivery" / _safe_name(tracker))

    def run_ids(self) -> list[str]:
        """Every run that has a run log or a spool in the store."""
        if not self.root.is_dir():
            return []
        ids = {path.stem for path in self.root.glob("*.json") if ".rank-" not in path.name}
        ids.update(path.parent.name for path in self.root.glob("*/spool"))
        return sorted(ids)


def spool_rank(path: Path) -> int | None:
    """The distributed-training rank whose process wrote the spool file ``path``, if any."""
    match = _RANK_PREFIX.match(path.name)
    return int(match[1]) if match else None


_RANK_PREFIX = re.compile(r"^rank([0-9]+)-")


def _safe_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)


@dataclass(slots=True)
class SpoolEntry:
    """One ``track_this`` call as the spool holds it."""

    timestamp: float
    step: int
    values: dict[str, Any]
    end_offset: int


class SpoolWriter:
    """Appends one JSON line per ``track_this`` call to this process's spool file.

    Lines go to a buffer and reach the operating system on ``flush``, which the run calls every
    delivery ``interval`` from a thread of its own: a process killed with SIGKILL loses only what
    it tracked since then. With ``write_through`` every line reaches the operating system at
    once: processes that join another's run use it, because a ``multiprocessing`` pool ends its
    workers without running their exit handlers.
    """

    def __init__(self, path: Path, *, write_through: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._write_through = write_through
        self._file: IO[str] = open(path, "a", encoding="ascii", buffering=1 << 16)  # noqa: SIM115
        self._lock = threading.Lock()
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    def append(self, timestamp: float, step: int, values: dict[str, Any]) -> None:
        line = self._dumps({"t": timestamp, "s": step, "v": values})
        with self._lock:
            self._file.write(line + "\n")
            if self._write_through:
                self._file.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def abandon(self) -> None:
        """In a forked child: whatever of the parent's buffer is left must never reach the file.

        The inherited descriptor is pointed at ``/dev/null``, so that even the buffer's flush at
        garbage collection cannot duplicate the parent's lines.
        """
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._file.fileno())
        finally:
            os.close(devnull)


def read_spool(path: Path, offset: int, max_bytes: int = _READ_CHUNK) -> list[SpoolEntry]:
    """Return the complete lines of ``path`` from ``offset``, up to about ``max_bytes``.

    A partial last line (a process killed mid-write) is left for later, and skipped for good once
    its process is gone because nothing ever completes it.
    """
    entries: list[SpoolEntry] = []
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read(max_bytes)
        if len(data) == max_bytes and b"\n" not in data:
            data += file.readline()
    lines = data.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()
    if not lines:
        return entries
    try:  # one C-level parse for the whole chunk; line by line only around a torn line
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        records = [_parse(raw) for raw in lines]
    position = offset
    for raw, record in zip(lines, records, strict=True):
        position += len(raw)
        if record is not None:
            entries.append(SpoolEntry(record["t"], record["s"], record["v"], position))
    return entries


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # a torn line from a killed process: nothing valid to deliver in it


def iter_spool(path: Path, offset: int = 0) -> Iterator[SpoolEntry]:
    """Every complete entry of ``path`` from ``offset`` on, read a chunk at a time."""
    while entries := read_spool(path, offset):
        yield from entries
        offset = entries[-1].end_offset


class TrackerPositions:
    """What one tracker has received of each spool file of a run, and whether it closed the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def offset(self, spool: Path) -> int:
        try:
            return int((self.folder / f"{spool.stem}.offset").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def save(self, spool: Path, offset: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{spool.stem}.offset"
        temporary = target.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        temporary.write_text(str(offset))
        os.replace(temporary, target)

    @contextmanager
    def claim(self, spool: Path) -> Iterator[bool]:
        """Hold the right to deliver ``spool`` to this tracker; yields False if another has it."""
        with _flock(self.folder / f"{spool.stem}.lock", blocking=False) as acquired:
            yield acquired

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Serialise ``trackhook_open_run`` across processes, so that only one creates the run."""
        with _flock(self.folder / "open.lock", blocking=True):
            yield

    def closed_status(self) -> str | None:
        try:
            return (self.folder / "closed").read_text().strip() or None
        except FileNotFoundError:
            return None

    def reopen(self) -> None:
        """The run is open again (the same run_id continues it): it must be closed again."""
        (self.folder / "closed").unlink(missing_ok=True)

    def mark_closed(self, status: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "closed").write_text(status)


@contextmanager
def _flock(path: Path, *, blocking: bool) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
