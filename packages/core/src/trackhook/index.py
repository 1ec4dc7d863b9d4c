"""The index of a run's values: the spool's lines regrouped by key, in an SQLite file on disk.

A run's values live in its spool files, one line per ``track_this`` call, in the order they were
tracked. The run log wants them by key, then by step, with a later value at the same key and step
replacing the earlier one. Holding them in memory to regroup them is what made long runs grow
without bound; the index regroups them on disk instead (SQLite, from the standard library), so a
run, ``trackhook sync`` and ``trackhook show`` hold a few megabytes of it however many values
there are.

Training tracks a key at growing steps, so the index keeps each key's values as they come, as
the run log's text (``"<step>": value``), a chunk per row: writing the run log is then a copy.
A key that comes back to a step it had (a value replaced, a step tracked out of order) moves to
a table of one row per value, where the latest tracked at a step wins.

The index is a cache: it is fed from the spool files (what is new in each, as often as wanted),
belongs to one process, and is deleted when that process is done with it.
"""

from __future__ import annotations

import errno
import functools
import glob
import json
import math
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trackhook.formats import (
    PARAM_KEYS,
    SPOOL_AS_PARAMS,
    SPOOL_STEP,
    SPOOL_TIME,
    SPOOL_VALUES,
    spool_format,
)
from trackhook.held import is_file_record
from trackhook.processes import process_exists
from trackhook.store import has_entry_shape, parse_spool_lines, spool_entry_of, whole_lines

__all__ = ["ValueIndex", "index_folder", "remove_abandoned_indexes"]

_READ_BYTES = 1 << 16
"""Spool read at once while indexing: a small piece, so that the index's passes in the background
hold little beside what the run and its delivery threads hold."""
_PENDING_BYTES = 2 << 20
"""Values held in memory before they are written to the index as chunks (a value as a string
in a list takes about 96 bytes beside its text)."""
_BATCH_ROWS = 2_000
"""Rows fetched at once while reading: bounds the memory a reader holds."""
_CACHE_KIB = 8 << 10
"""SQLite's page cache for one index; beyond it pages go back to the file."""
_INDENTED_UP_TO = 10_000
"""Runs of at most this many values get a run log indented for people; longer ones get one line
a key (indenting every value would add a dozen bytes to each)."""
_STEPS = range(-(2**63), 2**63)

_SCHEMA = (
    "CREATE TABLE chunks (key INTEGER NOT NULL, seq INTEGER NOT NULL, text TEXT NOT NULL, "
    "named INTEGER NOT NULL, PRIMARY KEY (key, seq)) WITHOUT ROWID",
    "CREATE TABLE tracked (key INTEGER NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, "
    "value TEXT NOT NULL, leaves INTEGER NOT NULL, PRIMARY KEY (key, step)) WITHOUT ROWID",
)
_UPSERT = """
INSERT INTO tracked (key, step, time, value, leaves) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key, step) DO UPDATE
SET time = excluded.time, value = excluded.value, leaves = excluded.leaves
WHERE excluded.time >= tracked.time
"""


@dataclass(slots=True)
class _Key:
    """What the index knows of one key in memory: a few numbers, never its values."""

    id: int
    first_time: float
    first_seq: int
    ordered: bool = True
    """Every value so far came at a step greater than the one before: kept as chunks of text."""
    last_step: int = -(2**63) - 1
    held: int = 0
    """Values held as chunks."""
    count: int = 0
    """The same, nested dicts counted by their leaves."""
    pending: list[str] = field(default_factory=list)
    pending_named: bool = False
    chunks: int = 0


class ValueIndex:
    """Every value of some spool files, by key and step: the latest tracked at a key and step wins.

    Safe to use from several threads. Memory holds the keys, how far each file has been read and
    a few megabytes of values on their way to the file, never the run's values.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}.sqlite"
        # Created new, never through a link planted at its name, before SQLite opens it.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(self.path, flags, 0o600))
        self._lock = threading.RLock()
        try:
            with self._disk_errors():
                self._database = _connect(self.path)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        self._keys: dict[str, _Key] = {}
        self._param_keys: dict[str, None] = {}
        """The keys of ``track_params`` lines, in the order first indexed."""
        self._read_up_to: dict[Path, int] = {}
        self._lines = 0
        self._pending_rows: list[tuple[int, int, float, str, int]] = []
        """Values of keys that came back to a step they had, in the order tracked."""
        self._pending_bytes = 0
        self._closed = False

    # -- feeding -----------------------------------------------------------------------------------

    def add(self, paths: Iterable[Path], *, own: Path | None = None) -> None:
        """Index what each spool file holds beyond what was indexed of it before.

        Each line is checked as delivery checks it (a foreign or planted line is left out), but
        those of ``own``, which this process wrote from values it had checked already.

        Files are taken in the order their first value was tracked, so that a resumed run's later
        session replaces the values of an earlier one at the same step. A line still being
        written (no end of line yet) waits for the next call.

        Raises ``FormatTooNewError`` before indexing anything when a newer trackhook wrote one of
        the files: the run log would otherwise lack its values without saying so.
        """
        files = list(paths)
        for path in files:
            spool_format(path)
        with self._lock:
            for path in sorted(files, key=_first_time):
                if self._closed:
                    return  # closed by another thread: a late background pass has nothing to do
                self._add_file(path, checked=path != own)

    def _add_file(self, path: Path, *, checked: bool) -> None:
        offset = self._read_up_to.get(path, 0)
        try:
            while True:
                lines, offset = _whole_lines(path, offset)
                if not lines:
                    return
                for record in parse_spool_lines(lines):
                    entry = _checked(record) if checked else _unchecked(record)
                    if entry is not None:
                        self._add_line(entry)
                self._read_up_to[path] = offset
                if self._pending_bytes >= _PENDING_BYTES:
                    self._store_pending()
        except FileNotFoundError:
            return  # removed since it was listed: nothing of it to index

    def _add_line(self, record: Any) -> None:
        """One spool line's values. The loop runs once per value of a long run: it is kept
        tight."""
        self._lines += 1
        time, step = record[SPOOL_TIME], record.get(SPOOL_STEP, 0)
        at_step = f'"{step}": '
        values = record[SPOOL_VALUES]
        if record.get(SPOOL_AS_PARAMS) == 1:
            self._param_keys.update(dict.fromkeys(values))
        for key, value in values.items():
            known = self._keys.get(key) or self._new_key(key, time, list(values).index(key))
            if time < known.first_time:
                known.first_time = time  # first tracked in a file indexed later
            kind = type(value)
            if kind is float and value - value == 0.0:  # finite
                text, leaves, size = float.__repr__(value), 1, 96
            elif kind is int:
                text, leaves, size = int.__repr__(value), 1, 96
            else:
                text, leaves = _python_json(value), _count_leaves(value)
                size = len(text) + 96
                known.pending_named |= "NaN" in text or "Infinity" in text
            if known.ordered and step <= known.last_step:
                self._to_rows(known)
            if known.ordered:
                known.pending.append(at_step + text)
                known.last_step = step
                known.held += 1
                known.count += leaves
            else:
                self._pending_rows.append((known.id, step, time, text, leaves))
            self._pending_bytes += size

    def _new_key(self, key: str, time: float, position: int) -> _Key:
        known = self._keys[key] = _Key(len(self._keys), time, self._lines << 20 | position)
        return known

    def _store_pending(self) -> None:
        """Write the values held in memory to the index, a chunk per key."""
        rows = []
        for known in self._keys.values():
            if known.pending:
                rows.append((known.id, known.chunks, ", ".join(known.pending), known.pending_named))
                known.chunks += 1
                known.pending, known.pending_named = [], False
        self._pending_bytes = 0
        with self._transaction():
            self._database.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)", rows)
            self._database.executemany(_UPSERT, self._pending_rows)
        self._pending_rows = []

    def _to_rows(self, known: _Key) -> None:
        """A key comes back to a step it had: its values so far become rows, one per value.

        They count as older than anything indexed from now on, which is exact within a file
        and across sessions one after another; between processes tracking the same key at the
        same step at once, the one indexed last wins.
        """
        self._store_pending()
        with self._transaction():
            for _, chunk in self._chunks_of(known):
                rows = [
                    (known.id, int(step), -1.0, _python_json(value), _count_leaves(value))
                    for step, value in chunk.items()
                ]
                self._database.executemany(_UPSERT, rows)
            self._database.execute("DELETE FROM chunks WHERE key = ?", (known.id,))
        known.ordered, known.held, known.count, known.chunks = False, 0, 0, 0

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._disk_errors():
            self._database.execute("BEGIN")
            try:
                yield
            except BaseException:
                if self._database.in_transaction:
                    self._database.execute("ROLLBACK")
                raise
            self._database.execute("COMMIT")

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """SQLite's errors as ``OSError``: the index fails as any file of the store fails (a
        full disk, a read-only folder), and its callers handle it so."""
        try:
            yield
        except sqlite3.Error as error:
            cause = f"the index of the run's values could not be used: {error}"
            raise OSError(errno.EIO, cause, str(self.path)) from error

    # -- reading -----------------------------------------------------------------------------------

    def param_keys(self) -> list[str]:
        """The keys tracked with ``track_params``: trackers received their values as
        parameters, numbers included."""
        with self._lock:
            return list(self._param_keys)

    def param_keys_field(self) -> dict[str, list[str]]:
        """The run log's ``param_keys`` field: none when no value was tracked as a parameter."""
        keys = self.param_keys()
        return {PARAM_KEYS: keys} if keys else {}

    def value_count(self) -> int:
        """How many values the run holds, nested dicts counted by their leaves."""
        with self._lock, self._disk_errors():
            self._store_pending()
            (rows,) = self._database.execute("SELECT TOTAL(leaves) FROM tracked").fetchone()
            return int(rows) + sum(known.count for known in self._keys.values() if known.ordered)

    def as_user_defined_metrics(self) -> dict[str, Any]:
        """Every value in runnable's shape, as a dict: for a caller who asked for all of it."""
        face: dict[str, Any] = {}
        for key, read in self.readers():
            rows = list(read())
            if len(rows) == 1 and rows[0][0] == 0:
                face[key] = rows[0][1]
            else:
                face[key] = {str(step): value for step, value in rows}
        return face

    def readers(self) -> Iterator[tuple[str, Callable[[], Iterator[tuple[int, Any]]]]]:
        """Each key, in the order first tracked, with a way to read its ``(step, value)`` in step
        order, a batch at a time, as often as wanted (``trackhook show`` reads a key twice)."""
        for key, known in self._ordered_keys():
            yield key, functools.partial(self._values_of, known)

    def _values_of(self, known: _Key) -> Iterator[tuple[int, Any]]:
        if known.ordered:
            for _, chunk in self._chunks_of(known):
                yield from ((int(step), value) for step, value in chunk.items())
        else:
            for step, text in self._rows_of(known):
                yield step, json.loads(text)

    def write_user_defined_metrics(self, out: IO[str], indent: int) -> None:
        """Write ``user_defined_metrics``'s value as strict JSON, one key at a time.

        ``indent`` is the indentation of the line it starts on: the value goes on from there.
        """
        if self.value_count() <= _INDENTED_UP_TO:
            text = json.dumps(_strict(self.as_user_defined_metrics()), indent=4, allow_nan=False)
            out.write(text.replace("\n", "\n" + " " * indent))
            return
        inner = "\n" + " " * (indent + 4)
        out.write("{")
        for number, (key, known) in enumerate(self._ordered_keys()):
            out.write(f"{',' if number else ''}{inner}{json.dumps(key)}: ")
            self._write_key(out, known)
        out.write("\n" + " " * indent + "}" if self._keys else "}")

    def _write_key(self, out: IO[str], known: _Key) -> None:
        """One key's value: alone when it was tracked only at step 0, else ``{"<step>": value}``."""
        if known.ordered and known.held == 1 and known.last_step == 0:
            ((_, value),) = self._values_of(known)
            out.write(json.dumps(_strict(value), allow_nan=False))
            return
        out.write("{")
        if known.ordered:
            for number, (text, named) in enumerate(self._chunk_texts(known)):
                out.write((", " if number else "") + (_strict_text(text) if named else text))
        else:
            for number, (step, text) in enumerate(self._rows_of(known)):
                strict = json.dumps(_strict(json.loads(text)), allow_nan=False)
                out.write(f'{", " if number else ""}"{step}": {strict}')
        out.write("}")

    def _ordered_keys(self) -> list[tuple[str, _Key]]:
        """Every key that holds a value, in the order first tracked; what is held in memory is
        written to the index first."""
        with self._lock:
            self._store_pending()
            keys = [item for item in self._keys.items() if not item[1].ordered or item[1].held]
        return sorted(keys, key=lambda item: (item[1].first_time, item[1].first_seq))

    def _chunk_texts(self, known: _Key) -> Iterator[tuple[str, bool]]:
        for seq in range(known.chunks):
            with self._lock, self._disk_errors():
                row = self._database.execute(
                    "SELECT text, named FROM chunks WHERE key = ? AND seq = ?", (known.id, seq)
                ).fetchone()
            if row is not None:
                yield row[0], bool(row[1])

    def _chunks_of(self, known: _Key) -> Iterator[tuple[bool, dict[str, Any]]]:
        for text, named in self._chunk_texts(known):
            yield named, json.loads("{" + text + "}")

    def _rows_of(self, known: _Key) -> Iterator[tuple[int, str]]:
        """A key's ``(step, value as JSON)`` in step order, fetched a batch at a time."""
        after = _STEPS.start - 1
        while True:
            with self._lock, self._disk_errors():
                rows: list[tuple[int, str]] = self._database.execute(
                    "SELECT step, value FROM tracked WHERE key = ? AND step > ? "
                    "ORDER BY step LIMIT ?",
                    (known.id, max(after, _STEPS.start), _BATCH_ROWS),
                ).fetchall()
            if after < _STEPS.start:
                rows = self._lowest(known) + rows
            yield from rows
            if len(rows) < _BATCH_ROWS:
                return
            after = rows[-1][0]

    def _lowest(self, known: _Key) -> list[tuple[int, str]]:
        """The row at the lowest step there is, which ``step > lowest`` leaves out."""
        with self._lock, self._disk_errors():
            rows: list[tuple[int, str]] = self._database.execute(
                "SELECT step, value FROM tracked WHERE key = ? AND step = ?",
                (known.id, _STEPS.start),
            ).fetchall()
        return rows

    def close(self) -> None:
        """Delete the index: it was only ever a cache of the spool."""
        with self._lock:
            self._closed = True
            self._database.close()
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> ValueIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def index_folder(store_root: Path, run_id: str) -> Path:
    """Where the indexes of a run's values are, beside its spool."""
    return store_root / run_id / "index"


def remove_abandoned_indexes(folder: Path) -> None:
    """Delete the indexes that processes of this host left when they were killed: a cache
    nobody will read, as large as the run's values."""
    host = socket.gethostname()
    for path in folder.glob(f"{glob.escape(host)}-*.sqlite"):
        pid = path.name[len(host) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not process_exists(int(pid)):
            path.unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    database = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in (
        "journal_mode = OFF",  # a cache: rebuilt from the spool, never recovered
        "synchronous = OFF",
        "locking_mode = EXCLUSIVE",
        "temp_store = FILE",
        f"cache_size = -{_CACHE_KIB}",
    ):
        database.execute(f"PRAGMA {pragma}")
    for table in _SCHEMA:
        database.execute(table)
    return database


def _first_time(path: Path) -> float:
    """When the first value of a spool file was tracked (files that have none come last)."""
    try:
        with open(path, "rb") as file:
            record = json.loads(file.readline())
        return float(record[SPOOL_TIME])
    except (OSError, ValueError, TypeError, KeyError):
        return math.inf


def _whole_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """The complete lines of ``path`` from ``offset`` (a piece of the file), and where they end."""
    data = whole_lines(path, offset, _READ_BYTES)
    return data.splitlines(), offset + len(data)


def _unchecked(record: Any) -> Any:
    """The line as it is when it has ``store``'s shape and an int64 step (``None`` otherwise):
    the lines of the run's own spool, which ``track_this`` checked as it wrote them."""
    if not has_entry_shape(record):
        return None
    step = record.get(SPOOL_STEP, 0)
    return record if type(step) is int and step in _STEPS else None


def _checked(record: Any) -> Any:
    """The line with its step and values checked and normalised as delivery does with every
    line it reads (``None`` when it refuses them)."""
    found = spool_entry_of(record)
    if found is None:
        return None
    checked = {SPOOL_TIME: found.timestamp, SPOOL_STEP: found.step, SPOOL_VALUES: found.values}
    if found.as_params:
        checked[SPOOL_AS_PARAMS] = 1
    return checked


def _python_json(value: Any) -> str:
    """``value`` as JSON that gives it back to Python: NaN and the infinities as bare words."""
    kind = type(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else json.dumps(value)
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value)


def _count_leaves(value: Any) -> int:
    """How many values ``value`` is as trackers receive them: a nested dict by its leaves, a
    held file's record as one (read back from the index, a record is known by its shape)."""
    if type(value) is not dict or is_file_record(value):
        return 1
    return sum(map(_count_leaves, value.values()))


def _strict_text(text: str) -> str:
    """A chunk of ``"<step>": value`` with NaN and the infinities by their names."""
    return json.dumps(_strict(json.loads("{" + text + "}")), allow_nan=False)[1:-1]


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: _strict(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_strict(inner) for inner in value]
    return value
