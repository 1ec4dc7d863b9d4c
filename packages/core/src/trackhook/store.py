"""The run log store on disk: where each run's log, spool and delivery positions live.

::

    .run_log_store/
      <run_id>.json                        the run log (strict JSON), written at open and at close
      <run_id>.rank-<r>.json               the run log of rank r > 0 in distributed training
      .<run_id>.json.lock                  held by the one process writing that run log
      .<run_id>.sync.lock                  held by the one `trackhook sync` of that run
      <run_id>/spool/[rank<r>-]<host>-<pid>-<n>.v3.jsonl   every tracked value, one file a process
                                                   (its format in its name: ``trackhook.formats``)
      <run_id>/files/<sha256>/<name>       the content of each tracked file and image
                                                   (``trackhook.held``)
      <run_id>/delivery/<tracker>/<spool>.offset   how far that tracker has received that file
                                                   (a ``SpoolPosition``, as versioned JSON)
      <run_id>/delivery/<tracker>/<spool>.lock     held by the process delivering that file
      <run_id>/delivery/<tracker>/open.lock        serialises opening the run across processes
      <run_id>/delivery/<tracker>/closed           the status the run was closed with, once closed

The spool is JSON lines rather than SQLite because appending a line to a buffered file is the
cheapest durable write there is (``track_this`` stays within a few microseconds), each process owns
its file so processes never contend for a lock, and a reader needs nothing but ``open``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeGuard

from trackhook import formats
from trackhook.errors import InvalidValueError, TrackhookError, warn_in_background
from trackhook.formats import (
    FORMAT,
    POSITION_FORMAT,
    POSITION_OFFSET,
    POSITION_VALUES_DONE,
    SPOOL_AS_PARAMS,
    SPOOL_FILES,
    SPOOL_LATEST_TIME,
    SPOOL_STEP,
    SPOOL_TIME,
    SPOOL_VALUES,
    check_format,
    spool_format,
    spool_name,
)
from trackhook.held import is_file_record, safe_file_name
from trackhook.lines import encode_line
from trackhook.values import MAX_STEP, check_step, flatten, normalise_values, only_plain_floats

__all__ = [
    "RunStore",
    "RunStoreError",
    "SpoolEntry",
    "SpoolPosition",
    "SpoolWriter",
    "TrackerPositions",
    "UnsafeStorePath",
    "has_entry_shape",
    "iter_spool",
    "parse_spool_lines",
    "read_spool",
    "spool_entry_of",
    "spool_rank",
    "whole_lines",
]

_READ_CHUNK = 1 << 20


class RunStore:
    """Paths of one run log store folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._told: set[str] = set()
        self._told_lock = threading.Lock()

    def tell_once(self, trouble: RunStoreError) -> bool:
        """Warn of ``trouble`` unless this store has already said the same; True if it warned.

        The trackers of a run share its store: a read-only folder is one problem, said once,
        not once per tracker.
        """
        with self._told_lock:
            if trouble.cause in self._told:
                return False
            self._told.add(trouble.cause)
        warn_in_background(str(trouble))
        return True

    def run_log_path(self, run_id: str, rank: int | None = None) -> Path:
        suffix = f".rank-{rank}" if rank else ""
        return self.root / f"{run_id}{suffix}.json"

    def spool_dir(self, run_id: str) -> Path:
        return self.root / run_id / "spool"

    def new_spool_path(self, run_id: str, rank: int | None = None) -> Path:
        prefix = f"rank{rank}-" if rank is not None else ""
        stem = f"{prefix}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self.spool_dir(run_id) / spool_name(stem)

    def spool_files(self, run_id: str) -> list[Path]:
        folder = self.spool_dir(run_id)
        with _store_errors(folder, "list the spool files in"):
            return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    def positions(self, run_id: str, tracker: str) -> TrackerPositions:
        return TrackerPositions(self.root, run_id, tracker)

    def check_formats(self, run_id: str) -> None:
        """Raise ``FormatTooNewError`` when a newer trackhook wrote a spool file or a delivery
        position of ``run_id``: delivering it by this trackhook's rules would misread the values,
        or send them twice. Other troubles of the store are left to delivery, which reports them.
        """
        try:
            spools = self.spool_files(run_id)
            delivery = self.root / run_id / "delivery"
            folders = list(delivery.iterdir()) if delivery.is_dir() else []
            trackers = [folder.name for folder in folders if folder.is_dir()]
        except OSError:  # RunStoreError included: a store it cannot read is delivery's to report
            return
        for tracker in trackers:
            positions = self.positions(run_id, tracker)
            for spool in spools:
                with suppress(UnsafeStorePath, RunStoreError):
                    positions.position(spool)
        for spool in spools:
            spool_format(spool)

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


@dataclass(slots=True)
class SpoolEntry:
    """One ``track_this`` call as the spool holds it.

    A line that is not one (torn by a crash, planted, of the wrong shape) still yields an entry,
    with no values and ``unreadable`` set: readers move past it, count it, deliver the lines after.
    """

    timestamp: float
    step: int
    values: dict[str, Any]
    end_offset: int
    unreadable: bool = False
    as_params: bool = False
    """Tracked by ``track_params``: its numbers reach trackers as parameters."""
    files: frozenset[str] = frozenset()
    """The dotted keys of its values that are held files (``trackhook.held``)."""


_BUFFER_BYTES = 1 << 16
"""Lines are written once this much is waiting (or at the next flush)."""
_MAX_HELD_BYTES = 64 << 20
"""How much of the lines the disk refused is held in memory; values beyond are dropped, counted."""
_RETRY_SECONDS = 0.5
"""While the disk refuses, how often a flush or an append tries again."""
_SPOOL_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_DISK_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file size limit (ulimit -f) is reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission is denied",
    errno.EPERM: "permission is denied",
    errno.ELOOP: "a symbolic link stands in the way, which trackhook never follows",
    errno.ENOTDIR: "a file stands where a folder belongs",
    errno.EEXIST: "a file stands where a folder belongs",
}


class SpoolWriter:
    """Appends one JSON line per ``track_this`` call to this process's spool file.

    Lines wait in memory and reach the operating system on ``flush``, which the run calls every
    delivery ``interval`` from a thread of its own: a process killed with SIGKILL loses only what
    it tracked since then. With ``write_through`` every line reaches the operating system at
    once: processes that join another's run use it, because a ``multiprocessing`` pool ends its
    workers without running their exit handlers.

    Trackhook's own disk never fails ``track_this``: when the spool cannot be opened or written
    (a full disk, the file size limit, a read-only store, a planted symbolic link), the lines are
    held, up to ``_MAX_HELD_BYTES``, and written in order once the disk takes them again; values
    beyond that are dropped and counted in ``lost_values``. One warning names the folder and the
    cause. A write cut short leaves no torn line: the file is cut back to its last whole line.
    """

    def __init__(self, path: Path, *, write_through: bool = False) -> None:
        self.path = path
        self.error: str | None = None
        """Why the spool could not be written, from the first failure on (kept once it recovers)."""
        self.lost_values = 0
        """Values that were never written: dropped beyond the bound, or still held at close."""
        self._write_through = write_through
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._descriptor: int | None = None
        self._size = 0  # the file's size at its last whole line
        self._failing = False
        self._next_try = 0.0
        self._closed = False
        self._sealed = False
        with self._lock:
            self._open()

    @property
    def held_values(self) -> int:
        """Values tracked but not on disk yet: buffered, or held while the disk refuses them."""
        with self._lock:
            return _values_in(self._pending)

    def run_log_entry(self) -> dict[str, Any] | None:
        """What the disk refused, for the run log; ``None`` when every value reached the disk."""
        if self.error is None:
            return None
        return {
            formats.TROUBLE_FOLDER: str(self.path.parent.absolute()),
            formats.TROUBLE_ERROR: self.error,
            formats.TROUBLE_HELD: self.held_values,
            formats.TROUBLE_LOST: self.lost_values,
        }

    def append(
        self,
        timestamp: float,
        step: int,
        values: dict[str, Any],
        *,
        as_params: bool = False,
        files: list[str] | None = None,
    ) -> bool:
        """Take the line of one call; False, taking nothing, once the spool is sealed."""
        return self.append_line(
            encode_line(timestamp, step, values, as_params=as_params, files=files)
        )

    def append_line(self, data: bytes) -> bool:
        """Take one encoded line (``trackhook.lines``); False, taking nothing, once sealed."""
        with self._lock:
            if self._sealed:
                return False
            if self._failing and self._pending_bytes + len(data) > _MAX_HELD_BYTES:
                self._drop(data)
                return True
            self._pending.append(data)
            self._pending_bytes += len(data)
            if self._write_through or self._pending_bytes >= _BUFFER_BYTES:
                self._write_pending(force=False)
        return True

    def seal(self) -> bool:
        """Take no more lines: the run is closing. True for the one call that sealed it, so that
        of two threads closing the run, one does."""
        with self._lock:
            if self._sealed:
                return False
            self._sealed = True
            return True

    def flush(self, *, retry: bool = False) -> None:
        """Hand what is waiting to the operating system.

        While the disk refuses lines, a flush tries again at most every ``_RETRY_SECONDS``;
        ``retry`` tries now: delivery does before its last pass, so that lines the disk takes
        again just before the run closes still reach the trackers.
        """
        with self._lock:
            self._write_pending(force=retry)

    def close(self) -> None:
        """Write what is held (a last try), count what still cannot be, and close the file.

        Values that never reach the file are lost for good: no tracker received them and no
        ``trackhook sync`` can find them. One warning says how many.
        """
        with self._lock:
            if self._closed:
                return
            self._write_pending(force=True)
            self.lost_values += _values_in(self._pending)
            self._pending, self._pending_bytes = [], 0
            self._closed = self._sealed = True
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None
        if self.lost_values:
            warn_in_background(
                f"{self.lost_values} values tracked by this process never reached the spool in "
                f"{self.path.parent.absolute()} ({self.error}): no tracker received them and "
                "`trackhook sync` cannot deliver them"
            )

    def abandon(self) -> None:
        """In a forked child: whatever of the parent's lines are left must never reach the file.

        Without the lock, which a thread of the parent may have held at the fork.
        """
        self._pending, self._pending_bytes = [], 0
        self._closed = self._sealed = True
        if self._descriptor is not None:
            with suppress(OSError):
                os.close(self._descriptor)
            self._descriptor = None

    # -- the disk, under the lock ------------------------------------------------------------------

    def _open(self) -> bool:
        """Open the spool file, never through a symbolic link (neither the file nor its folder)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(self.path.parent, _FOLDER_FLAGS)
            try:
                self._descriptor = os.open(self.path.name, _SPOOL_FLAGS, 0o666, dir_fd=folder)
            finally:
                os.close(folder)
            self._size = os.fstat(self._descriptor).st_size
        except OSError as error:
            self._fail(error)
            return False
        return True

    def _write_pending(self, *, force: bool) -> None:
        if self._closed or not self._pending:
            return
        if self._failing and not force and time.monotonic() < self._next_try:
            return
        if self._descriptor is None and not self._open():
            return
        assert self._descriptor is not None
        data = memoryview(b"".join(self._pending))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._descriptor, data[written:])
        except OSError as error:
            self._keep_whole_lines(written)
            self._fail(error)
            return
        self._size += written
        self._pending, self._pending_bytes = [], 0
        self._failing = False

    def _keep_whole_lines(self, written: int) -> None:
        """After a short write: keep the lines written whole, cut the file back to the last one,
        and hold the rest."""
        whole = kept = 0
        for line in self._pending:
            if whole + len(line) > written:
                break
            whole += len(line)
            kept += 1
        rest = self._pending[kept:]
        if written > whole and not self._cut_back(self._size + whole):
            rest.insert(0, b"\n")  # the torn line stays, ended: one unreadable line, no value lost
            whole = written
        self._size += whole
        self._pending, self._pending_bytes = rest, sum(map(len, rest))

    def _cut_back(self, size: int) -> bool:
        assert self._descriptor is not None
        try:
            os.ftruncate(self._descriptor, size)
        except OSError:
            return False
        return True

    def _fail(self, error: OSError) -> None:
        self._failing = True
        self._next_try = time.monotonic() + _RETRY_SECONDS
        if self.error is not None:
            return
        cause = _cause(error)
        self.error = f"{cause} ({type(error).__name__}: {error})"
        warn_in_background(
            f"cannot write the spool in {self.path.parent.absolute()}: {cause}; tracking goes "
            f"on, values are held in memory (up to {_MAX_HELD_BYTES / 2**20:.3g} MiB, then "
            "dropped and counted) and written as soon as the disk takes them again; free some "
            f"space or fix the folder (error: {error})"
        )

    def _drop(self, line: bytes) -> None:
        if not self.lost_values:
            warn_in_background(
                f"the spool in {self.path.parent.absolute()} still cannot be written "
                f"({self.error}) and {_MAX_HELD_BYTES / 2**20:.3g} MiB of values are held: newer "
                "values are dropped, and counted in the run log"
            )
        self.lost_values += _values_in([line])


def _cause(error: OSError) -> str:
    """What went wrong, in words a user acts on."""
    # a link where a folder belongs: mkdir says EEXIST (dangling), O_NOFOLLOW says ENOTDIR
    if error.errno in (errno.ENOTDIR, errno.EEXIST) and os.path.islink(error.filename):
        return _DISK_CAUSES[errno.ELOOP]
    return _DISK_CAUSES.get(error.errno or 0, error.strerror or str(error))


def _values_in(lines: list[bytes]) -> int:
    return sum(_count_leaves(json.loads(line)) for line in lines if line != b"\n")


def _count_leaves(line: dict[str, Any]) -> int:
    """How many values a line holds as trackers receive them (nested dicts by their leaves)."""
    files = frozenset(line.get(SPOOL_FILES) or ())
    return sum(1 for key, value in line[SPOOL_VALUES].items() for _ in flatten(key, value, files))


def whole_lines(path: Path, offset: int, max_bytes: int) -> bytes:
    """The complete lines of ``path`` from ``offset``, about ``max_bytes`` of them: a line still
    being written waits, and one longer than ``max_bytes`` is read whole."""
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read(max_bytes)
        if len(data) == max_bytes and b"\n" not in data:
            data += file.readline()
    return data[: data.rfind(b"\n") + 1]


def read_spool(path: Path, offset: int, max_bytes: int = _READ_CHUNK) -> list[SpoolEntry]:
    """Return the complete lines of ``path`` from ``offset``, up to about ``max_bytes``.

    A partial last line (a process killed mid-write) is left for later, and skipped for good once
    its process is gone because nothing ever completes it. A complete line that is not what
    ``track_this`` writes (invalid JSON, the wrong shape, values it refuses) comes back as an
    ``unreadable`` entry without values.

    Raises ``FormatTooNewError`` when a newer trackhook wrote the file: its lines are neither
    read nor skipped, they wait for that trackhook.
    """
    spool_format(path)
    lines = whole_lines(path, offset, max_bytes).splitlines(keepends=True)
    if not lines:
        return []
    records = parse_spool_lines(lines)
    entries: list[SpoolEntry] = []
    position = offset
    for raw, record in zip(lines, records, strict=True):
        position += len(raw)
        entries.append(_plain_entry(record, position) or _entry(record, position))
    return entries


def _plain_entry(record: Any, end_offset: int) -> SpoolEntry | None:
    """The entry of the common line, floats under plain keys at a step, checked at C speed;
    ``None`` for any other line, which ``_entry`` checks value by value. Delivery reads every
    line on a thread of the caller's process: what it spends, the caller's loop waits for."""
    if type(record) is not dict or record.keys() != _PLAIN_LINE_FIELDS:
        return None
    timestamp, step, values = record[SPOOL_TIME], record[SPOOL_STEP], record[SPOOL_VALUES]
    if (
        type(timestamp) is float
        and type(step) is int
        and type(values) is dict
        and 0 <= timestamp < SPOOL_LATEST_TIME
        and 0 <= step <= MAX_STEP
        and only_plain_floats(values)
    ):
        return SpoolEntry(timestamp, step, values, end_offset)
    return None


_PLAIN_LINE_FIELDS = frozenset({SPOOL_TIME, SPOOL_STEP, SPOOL_VALUES})


def parse_spool_lines(lines: list[bytes]) -> list[Any]:
    """The complete spool ``lines`` as JSON, one record a line (``None`` for a line that is not
    JSON): one C-level parse for the whole chunk; line by line only around a bad line."""
    try:
        records: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        return [_parse(raw) for raw in lines]
    return records


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # a torn or foreign line: nothing valid to deliver in it


def _entry(record: Any, end_offset: int) -> SpoolEntry:
    """The entry a parsed line makes; ``unreadable`` unless it is what ``track_this`` writes, so
    that a foreign line never reaches a tracker (nor a step or a string no tracker can take)."""
    found = spool_entry_of(record, end_offset)
    return found if found is not None else SpoolEntry(0.0, 0, {}, end_offset, unreadable=True)


def spool_entry_of(record: Any, end_offset: int = 0) -> SpoolEntry | None:
    """The entry of a parsed spool line, its step and values checked and normalised as delivery
    does with every line it reads; ``None`` unless it is what ``track_this`` writes."""
    if has_entry_shape(record):
        try:
            values = normalise_values(record[SPOOL_VALUES])
            step = check_step(record.get(SPOOL_STEP))
        except InvalidValueError:
            return None
        files = _files_of(record.get(SPOOL_FILES), values)
        if files is None:
            return None
        as_params = record.get(SPOOL_AS_PARAMS) == 1
        return SpoolEntry(
            record[SPOOL_TIME], step, values, end_offset, as_params=as_params, files=files
        )
    return None


def _files_of(keys: Any, values: dict[str, Any]) -> frozenset[str] | None:
    """The keys of a line's held files, each checked to be a held file's record; ``None`` when
    one is not (a planted or garbled line)."""
    if keys is None:
        return frozenset()
    if type(keys) is not list or not all(type(key) is str for key in keys):
        return None
    files = frozenset(keys)
    found = {
        key: value
        for top, inner in values.items()
        for key, value in flatten(top, inner, files)
        if key in files
    }
    if len(found) != len(files) or not all(map(is_file_record, found.values())):
        return None
    return files


def has_entry_shape(record: Any) -> bool:
    """``{"t": a time trackers can store, "s": ..., "v": a dict}``.

    A time is a Unix time in seconds that trackers store in milliseconds as an int64 (MLflow):
    a planted ``1e300`` would make every batch holding it fail as an outage, for ever.
    """
    return (
        type(record) is dict
        and type(record.get(SPOOL_VALUES)) is dict
        and type(record.get(SPOOL_TIME)) in (int, float)
        and 0 <= record[SPOOL_TIME] < SPOOL_LATEST_TIME
    )


def iter_spool(path: Path, offset: int = 0) -> Iterator[SpoolEntry]:
    """Every complete entry of ``path`` from ``offset`` on, read a chunk at a time."""
    while entries := read_spool(path, offset):
        yield from entries
        offset = entries[-1].end_offset


@dataclass(frozen=True, order=True)
class SpoolPosition:
    """How far a tracker has received one spool file.

    ``offset`` is where a line starts (or the file's end) and ``values_done`` how many of that
    line's values, in the order ``values.flatten`` yields them, the tracker has already handled
    (accepted, or refused for good): one ``track_this`` call can hold more values than a batch, so
    a line can be part-delivered when a send stops.
    """

    offset: int = 0
    values_done: int = 0


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class TrackerPositions:
    """What one tracker has received of each spool file of a run, and whether it closed the run.

    Every file here is reached through folders opened with ``O_NOFOLLOW`` from the store's root
    down, and written to a new file then renamed over the old one, which replaces a symbolic link
    rather than following it: a link planted in a store others can write to never makes trackhook
    overwrite or read the file it points to. A planted link where a folder or a lock belongs is an
    error that names it; a planted link where a position or the ``closed`` marker belongs reads as
    absent and is replaced on the next write.
    """

    def __init__(self, root: Path, run_id: str, tracker: str) -> None:
        self._root = root
        self._parts = (run_id, "delivery", safe_file_name(tracker))
        self.folder = root.joinpath(*self._parts)

    def position(self, spool: Path) -> SpoolPosition:
        with self._store_errors("read delivery positions in"):
            text = self._read(f"{spool.stem}.offset")
        if text is None:
            return SpoolPosition()
        try:
            return _parse_position(text, self.folder / f"{spool.stem}.offset")
        except formats.FormatTooNewError:
            raise  # starting again would send everything twice
        except ValueError:
            return SpoolPosition()  # a torn or foreign file: delivery starts the file again

    def save(self, spool: Path, position: SpoolPosition) -> None:
        document = {
            FORMAT: POSITION_FORMAT,
            POSITION_OFFSET: position.offset,
            POSITION_VALUES_DONE: position.values_done,
        }
        with self._store_errors("record delivery positions in"):
            self._write(f"{spool.stem}.offset", json.dumps(document))

    @contextmanager
    def claim(self, spool: Path) -> Iterator[bool]:
        """Hold the right to deliver ``spool`` to this tracker; yields False if another has it."""
        with self._lock(f"{spool.stem}.lock", blocking=False) as acquired:
            yield acquired

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Serialise ``trackhook_open_run`` across processes, so that only one creates the run."""
        with self._lock("open.lock", blocking=True):
            yield

    def closed_status(self) -> str | None:
        try:
            text = self._read("closed")
        except (UnsafeStorePath, OSError):
            return None  # never read through a planted link, nor guessed: counts as not closed
        return (text or "").strip() or None

    def reopen(self) -> None:
        """The run is open again (the same run_id continues it): it must be closed again."""
        with self._store_errors("reopen the run in"), self._folder(create=False) as folder:
            if folder is not None:
                with suppress(FileNotFoundError):
                    os.unlink("closed", dir_fd=folder)  # removes a link itself, never its target

    def mark_closed(self, status: str) -> None:
        with self._store_errors("record that the run is closed in"):
            self._write("closed", status)

    # -- files, never through a symbolic link ------------------------------------------------------

    def _read(self, name: str) -> str | None:
        with self._folder(create=False) as folder:
            if folder is None:
                return None
            try:
                descriptor = os.open(name, _READ_FLAGS, dir_fd=folder)
            except FileNotFoundError:
                return None
            except OSError as error:
                if error.errno == errno.ELOOP:
                    return None  # a planted link: not ours, not followed
                raise
            with open(descriptor, encoding="utf-8") as file:
                return file.read()

    def _write(self, name: str, text: str) -> None:
        """Replace ``name`` atomically: a reader sees the old content or the new, never half."""
        temporary = f".{name}.{os.getpid()}-{threading.get_ident()}.tmp"
        with self._folder(create=True) as folder:
            assert folder is not None
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=folder)  # left by a crash of this very thread id
            descriptor = os.open(temporary, _NEW_FILE_FLAGS, 0o644, dir_fd=folder)
            with open(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)

    @contextmanager
    def _lock(self, name: str, *, blocking: bool) -> Iterator[bool]:
        # only the lock's own file under _store_errors: what the holder does is not the store's
        with self._store_errors("keep delivery locks in"):
            descriptor = self._lock_file(name)
        with open(descriptor, "a+b") as handle, _flocked(handle, blocking=blocking) as acquired:
            yield acquired

    def _lock_file(self, name: str) -> int:
        with self._folder(create=True) as folder:
            assert folder is not None
            try:
                return os.open(name, _LOCK_FLAGS, 0o644, dir_fd=folder)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise UnsafeStorePath(self.folder / name) from None
                raise

    @contextmanager
    def _store_errors(self, doing: str) -> Iterator[None]:
        with _store_errors(self.folder.parent, doing):
            yield

    @contextmanager
    def _folder(self, *, create: bool) -> Iterator[int | None]:
        """The tracker's folder as a descriptor, every level below the root opened without
        following a link; ``None`` when it does not exist and ``create`` is False."""
        if create:
            self._root.mkdir(parents=True, exist_ok=True)
        try:
            folder = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise
            yield None
            return
        try:
            for depth, part in enumerate(self._parts):
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(part, dir_fd=folder)
                try:
                    inner = os.open(part, _FOLDER_FLAGS, dir_fd=folder)
                except FileNotFoundError:
                    if create:
                        raise
                    yield None
                    return
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):
                        unsafe = self._root.joinpath(*self._parts[: depth + 1])
                        raise UnsafeStorePath(unsafe) from None
                    raise
                os.close(folder)
                folder = inner
            yield folder
        finally:
            os.close(folder)


class RunStoreError(TrackhookError, OSError):
    """Trackhook's own run log store refused a read or a write (a full disk, a read-only or
    foreign folder): the store's problem, never a tracker's.

    Also an ``OSError``, so that code handling a failing disk handles it as before.
    """

    def __init__(self, folder: Path, doing: str, error: OSError) -> None:
        self.folder = folder
        self.cause = _cause(error)
        super().__init__(
            f"cannot {doing} {folder.absolute()}: {self.cause} ({type(error).__name__}: "
            f"{error}); values wait in the spool until the folder can be written again (free "
            "some space or fix its permissions), then deliver them with: trackhook sync"
        )


@contextmanager
def _store_errors(folder: Path, doing: str) -> Iterator[None]:
    """Turn an ``OSError`` of the store into a ``RunStoreError`` naming ``folder``."""
    try:
        yield
    except RunStoreError:
        raise
    except OSError as error:
        raise RunStoreError(folder, doing, error) from error


class UnsafeStorePath(TrackhookError):
    """A symbolic link (or a file) stands where trackhook keeps a folder or a lock of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"{path} is a symbolic link or not a folder: trackhook never follows links inside the "
            "run log store, since whoever can write there could point them at your files; "
            "remove it (and check who else can write to the store), then run `trackhook sync`"
        )


def _parse_position(text: str, path: Path) -> SpoolPosition:
    """A position file of any format up to ``POSITION_FORMAT``; ``FormatTooNewError`` when it is
    newer, ``ValueError`` when it is not one."""
    text = text.strip()
    if text.isascii() and text.isdigit():  # format 1: the end of the last line received
        return SpoolPosition(int(text))
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"not a position: {text[:40]!r}")
    found = document.get(FORMAT, POSITION_FORMAT)
    if type(found) is int:
        check_format(path, formats.POSITION_FILE, found)
    offset, done = document.get(POSITION_OFFSET), document.get(POSITION_VALUES_DONE, 0)
    if not (_is_count(offset) and _is_count(done)):
        raise ValueError(f"not a position: {text[:40]!r}")
    return SpoolPosition(offset, done)


def _is_count(number: object) -> TypeGuard[int]:
    return type(number) is int and number >= 0


@contextmanager
def _flocked(handle: IO[bytes], *, blocking: bool) -> Iterator[bool]:
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
