"""The run log: one JSON file per run (and rank) that says how the run went, with every value.

``user_defined_metrics`` has the shape runnable's run log uses: a key tracked only at step 0 maps
to its value; any other key maps to ``{"<step>": value}``; nested dicts stay nested. Tracking the
same key at the same step again replaces the value. The values are never held in memory to write
it: they are streamed from a ``trackhook.index.ValueIndex`` of the spool, and written last, after
the other fields, so that a reader (a writer merging its counts, ``trackhook runs``) reads those
fields without the values, and a writer that keeps the values copies them from the file.

The file is strict JSON: NaN and the infinities, which JSON cannot hold, are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import codecs
import errno
import fcntl
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from trackhook import formats
from trackhook.formats import (
    FORMAT,
    METRICS,
    REJECTED_KEYS,
    REJECTED_REASONS,
    RUN_LOG_FORMAT,
    VALUE_COUNT,
    FormatTooNewError,
    run_log_format,
)
from trackhook.processes import process_exists

__all__ = [
    "CUMULATIVE_COUNTS",
    "MAX_REJECTED_KEYS",
    "MAX_REJECTED_REASONS",
    "METRICS",
    "OTHER_REASONS",
    "VALUE_COUNT",
    "CountsWritten",
    "MetricsWriter",
    "RunLogFile",
    "add_rejected_key",
    "add_rejected_reason",
    "exclusive_lock",
    "merge_not_loaded",
    "owner_is_gone",
    "read_run_log",
    "read_run_log_header",
    "start_time_of",
    "strict_json",
    "update_run_log",
    "with_run_log",
    "write_run_log",
]


MetricsWriter = Callable[[IO[str], int], None]
"""Writes the value of a run log's ``user_defined_metrics``, starting at the given indentation:
the run log streams it (from a ``ValueIndex``, or from the run log it replaces) rather than hold
it in memory."""


def strict_json(value: Any) -> Any:
    """Replace the floats that JSON cannot hold by their names."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {key: strict_json(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [strict_json(inner) for inner in value]
    return value


def write_run_log(path: Path, document: Mapping[str, Any]) -> None:
    """Write the run log atomically, so a reader never sees half a file.

    ``document[METRICS]`` is a dict or a ``MetricsWriter``; it is written last, after the other
    fields (indented for people), so that a reader finds them without reading the values. The
    format (``formats.RUN_LOG_FORMAT``) is written first, whatever ``document`` says.

    The temporary file is created new (never through a symlink planted at its name) and removed
    whatever goes wrong (a full disk, a file-size limit): a failed write leaves the run log as it
    was and nothing beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {FORMAT: RUN_LOG_FORMAT}
    header.update((key, value) for key, value in document.items() if key not in (FORMAT, METRICS))
    metrics = document.get(METRICS) or {}
    text = json.dumps(strict_json(header), indent=4, allow_nan=False)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with open(os.open(temporary, flags, 0o666), "w", encoding="utf-8") as file:
            file.write(text[:-2] + "," if header else "{")
            file.write(_METRICS_MARKER.decode())
            if callable(metrics):
                metrics(file, 4)
            else:
                _metrics_of(metrics)(file, 4)
            file.write("\n}\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


_METRICS_MARKER = b'\n    "user_defined_metrics": '
"""Where the values start in a run log written last by ``write_run_log``."""
_TOP_LEVEL_KEY = b'\n    "'
"""How a field starts at the top level of an indented run log (deeper ones are indented more,
and a string in JSON holds no raw line break)."""
_CLOSING = b"\n}\n"


def _metrics_of(metrics: Mapping[str, Any]) -> MetricsWriter:
    """The ``MetricsWriter`` of values held as a dict (a small run, or an older run log)."""

    def write(out: IO[str], indent: int) -> None:
        text = json.dumps(strict_json(dict(metrics)), indent=4, allow_nan=False)
        out.write(text.replace("\n", "\n" + " " * indent))

    return write


def read_run_log(path: Path) -> dict[str, Any]:
    """The whole run log, its values included: for small runs and tests. ``read_run_log_header``
    reads a run of any length in bounded memory.

    Raises ``FormatTooNewError`` (a ``ValueError``) when a newer trackhook wrote it.
    """
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(result, dict):
        run_log_format(path, result)
    return result


class RunLogFile:
    """A run log read without its values: its other fields, and a way to copy the values on.

    A run log written by ``write_run_log`` holds its values last; they are then never loaded,
    only copied from the file when it is rewritten. One written otherwise (by an older
    trackhook: compact, or with fields after the values) is read whole.
    """

    def __init__(self, header: dict[str, Any], metrics: MetricsWriter, loaded: Any = None):
        self.header = header
        self.write_metrics = metrics
        self.loaded_metrics = loaded
        """The values, when the file had to be read whole to reach its other fields."""


def read_run_log_header(path: Path) -> RunLogFile:
    """The run log at ``path`` without loading its values (see ``RunLogFile``).

    Raises ``OSError`` when it cannot be read, ``ValueError`` when it is not a run log, and
    ``FormatTooNewError`` (a ``ValueError``) when a newer trackhook wrote it.
    """
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
        found = _values_last(file)
        if found is None:
            file.seek(0)
            document = json.loads(file.read())
            if not isinstance(document, dict):
                raise ValueError(f"{path} is not a run log (not a JSON object)")
            run_log_format(path, document)
            metrics = document.pop(METRICS, None) or {}
            return RunLogFile(document, _metrics_of(metrics), metrics)
    header, start, end = found
    run_log_format(path, header)
    return RunLogFile(header, _copy_of(path, start, end))


def _values_last(file: IO[bytes]) -> tuple[dict[str, Any], int, int] | None:
    """``(the fields, where the values start, where they end)`` when the values come last."""
    head = b""
    while (at := head.find(_METRICS_MARKER, max(len(head) - _HEADER_PIECE - 64, 0))) < 0:
        chunk = file.read(_HEADER_PIECE)
        if not chunk or len(head) > _MAX_HEADER:
            return None  # compact: written by an older trackhook
        head += chunk
    start = at + len(_METRICS_MARKER)
    size = os.fstat(file.fileno()).st_size
    file.seek(start)
    if _occurs_in(file, _TOP_LEVEL_KEY) or not _ends_with(file, size, _CLOSING):
        return None  # a field after the values: written by an older trackhook
    prefix = head[:at].rstrip()
    try:
        header = json.loads((prefix[:-1] if prefix.endswith(b",") else prefix) + b"\n}")
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return header, start, size - len(_CLOSING)


def _occurs_in(file: IO[bytes], needle: bytes) -> bool:
    """Whether ``needle`` occurs in the rest of ``file``, read a chunk at a time."""
    tail = b""
    while chunk := file.read(_READ_CHUNK):
        if needle in tail + chunk[: len(needle)] or needle in chunk:
            return True
        tail = chunk[-len(needle) :]
    return False


def _ends_with(file: IO[bytes], size: int, ending: bytes) -> bool:
    file.seek(max(size - len(ending), 0))
    return file.read() == ending


def _copy_of(path: Path, start: int, end: int) -> MetricsWriter:
    """The ``MetricsWriter`` that copies the values of a run log as they are in its file."""

    def copy(out: IO[str], indent: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")()
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
            file.seek(start)
            left = end - start
            while left > 0:
                chunk = file.read(min(_READ_CHUNK, left))
                if not chunk:
                    raise ValueError(f"{path} changed while its values were copied")
                out.write(decoder.decode(chunk))
                left -= len(chunk)

    return copy


_READ_CHUNK = 1 << 18
"""Read at once while scanning or copying a run log's values."""
_HEADER_PIECE = 1 << 14
"""Read at once while looking for the values: the fields before them are a few kilobytes."""
_MAX_HEADER = 4 << 20
"""A run log whose fields before the values take more than this is read whole."""


_T = TypeVar("_T")

_LOCK_WAIT = 60.0
"""Seconds a writer waits for another to finish with the run log: each holds it for one read
and one write (seconds at most, for millions of values)."""
_LOCK_POLL = 0.02


def update_run_log(
    path: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """Replace the run log by ``change(the run log as it is now)``, under its lock.

    Every writer of a run log (its owner at open and at close, another owner of the same run_id,
    ``trackhook sync``) goes through here: each changes what the others wrote, so no writer ever
    writes back a stale copy. ``change`` gets the run log without its values (which may be
    millions) and returns ``None`` to leave the file as it is; a document without
    ``user_defined_metrics`` keeps the values the file holds, copied without being loaded.
    Returns what was written, without the values.

    Raises ``OSError`` when the run log cannot be written, and ``FormatTooNewError`` when a newer
    trackhook wrote it (never replaced by an older format); the file is then left as it was.
    """
    lock = path.with_name(f".{path.name}.lock")
    with _locked(lock):
        current = _current(path)
        document = change(current.header)
        if document is None:
            return None
        if METRICS not in document:
            document = {**document, METRICS: current.write_metrics}
        write_run_log(path, document)
        return {key: value for key, value in document.items() if key != METRICS}


def with_run_log(path: Path, look: Callable[[dict[str, Any]], _T]) -> _T:
    """``look(the run log as it is now, without its values)``, while no other writer can change
    it.

    ``look`` gets ``{}`` when there is no readable run log. Raises ``TimeoutError`` (an
    ``OSError``) when another process holds the lock for more than a minute.
    """
    with _locked(path.with_name(f".{path.name}.lock")):
        return look(_current(path).header)


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with exclusive_lock(lock, _LOCK_WAIT) as held:
        if not held:
            raise TimeoutError(
                errno.ETIMEDOUT,
                f"another process has held the run log's lock for {_LOCK_WAIT:.0f} s",
                str(lock),
            )
        yield


def _current(path: Path) -> RunLogFile:
    """The run log at ``path``; empty when there is none, or none readable (it is replaced).

    One a newer trackhook wrote is readable, by that trackhook: ``FormatTooNewError``.
    """
    try:
        return read_run_log_header(path)
    except FormatTooNewError:
        raise
    except (OSError, ValueError):
        return RunLogFile({}, _metrics_of({}))


@contextmanager
def exclusive_lock(path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` across processes and threads; yield whether it is held.

    Waits at most ``timeout`` seconds for another holder. The lock file is created if missing and
    never opened through a symlink. The lock goes with the file descriptor: a holder that dies
    releases it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        yield _acquire(descriptor, time.monotonic() + timeout)
    finally:
        os.close(descriptor)


def _acquire(descriptor: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL)
        else:
            return True


def owner_is_gone(owner: object) -> bool:
    """Whether the process a run log names as its owner has ended (known only on its host)."""
    if not isinstance(owner, dict) or owner.get(formats.OWNER_HOST) != socket.gethostname():
        return False
    try:
        pid = int(owner[formats.OWNER_PID])
    except (KeyError, ValueError, TypeError):
        return False  # no pid to check: the owner is not known to be gone
    return not process_exists(pid)


def start_time_of(document: Mapping[str, Any]) -> float | None:
    """The run log's ``start_time`` as a timestamp, or ``None`` when it has none readable."""
    try:
        return datetime.fromisoformat(str(document[formats.START_TIME])).timestamp()
    except (KeyError, ValueError):
        return None


CUMULATIVE_COUNTS = (
    formats.DELIVERED,
    formats.RETRIED,
    formats.RENAMED,
    formats.TRUNCATED,
    formats.SKIPPED,
    formats.REJECTED,
)
"""Delivery counts that add up across the sessions of a run (a resumed run, a sync). So do the
values refused for their content, by reason (``REJECTED_REASONS``); the keys refused
(``REJECTED_KEYS``) are the union of every writer's, bounded."""
MAX_REJECTED_REASONS = 5
"""Distinct rejection reasons kept per tracker; further ones are counted under ``OTHER_REASONS``."""
OTHER_REASONS = "(other reasons)"
MAX_REJECTED_KEYS = 5


def add_rejected_reason(reasons: dict[str, int], reason: str, count: int) -> None:
    """Add ``count`` under ``reason``, or under ``OTHER_REASONS`` once ``MAX_REJECTED_REASONS``
    distinct reasons are kept."""
    if reason not in reasons and len(reasons) >= MAX_REJECTED_REASONS:
        reason = OTHER_REASONS
    reasons[reason] = reasons.get(reason, 0) + count


def add_rejected_key(keys: list[str], key: str) -> None:
    """Keep ``key`` among the refused ``keys``, unless it is there or ``MAX_REJECTED_KEYS`` are."""
    if key not in keys and len(keys) < MAX_REJECTED_KEYS:
        keys.append(key)


class CountsWritten:
    """The delivery counts one writer of a run log has added to it so far, per tracker.

    A run log is written by several processes (its owners, ``trackhook sync``, during the run or
    at once), each counting only what it delivered itself. Each write adds to the file only what
    this writer has not added yet, so the counts in the run log are the sum of what every writer
    delivered, whoever writes last.
    """

    def __init__(self) -> None:
        self._added: dict[str, Mapping[str, Any]] = {}

    def merge(self, recorded: object, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The run log's trackers (``recorded``) with this writer's ``entries`` folded in.

        An entry's fields replace the recorded ones, except its delivery counts, which are added,
        and the tracker's facts (``run``), kept when this writer has none.
        """
        listed = {
            str(item.get(formats.TRACKER_NAME)): dict(item)
            for item in (recorded if isinstance(recorded, list) else [])
            if isinstance(item, dict)
        }
        for entry in entries:
            name = str(entry[formats.TRACKER_NAME])
            earlier = listed.get(name, {})
            merged = {**earlier, **entry}
            if not entry.get(formats.TRACKER_RUN) and earlier.get(formats.TRACKER_RUN):
                merged[formats.TRACKER_RUN] = earlier[formats.TRACKER_RUN]
            merged[formats.TRACKER_DELIVERY] = _add_delivery(
                earlier.get(formats.TRACKER_DELIVERY),
                entry[formats.TRACKER_DELIVERY],
                self._added.get(name),
            )
            listed[name] = merged
        return list(listed.values())

    def remember(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """``entries`` are in the run log now: call once the write has succeeded."""
        for entry in entries:
            self._added[str(entry[formats.TRACKER_NAME])] = entry[formats.TRACKER_DELIVERY]


def merge_not_loaded(
    recorded: object, not_loaded: Iterable[Mapping[str, Any]], loaded: Iterable[str]
) -> list[dict[str, Any]]:
    """The run log's trackers that did not load, updated by one writer.

    A tracker this writer ``loaded`` is taken off the list; one it could not load either replaces
    the recorded entry of that name.
    """
    fresh = [dict(item) for item in not_loaded]
    gone = {*loaded, *(str(item.get(formats.TRACKER_NAME)) for item in fresh)}
    kept = [
        dict(item)
        for item in (recorded if isinstance(recorded, list) else [])
        if isinstance(item, dict) and str(item.get(formats.TRACKER_NAME)) not in gone
    ]
    return kept + fresh


def _add_delivery(
    earlier: object, report: Mapping[str, Any], added: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``report`` as the run log records it: the counts it has and ``added`` had not (what was
    delivered since this writer last wrote) added to the ``earlier`` ones; the rest (what is
    still undelivered, the last error) as the report says now."""
    before = earlier if isinstance(earlier, Mapping) else {}
    already = added or {}
    combined = dict(report)
    for name in CUMULATIVE_COUNTS:
        if name in report or name in before:
            new = _count(report.get(name)) - _count(already.get(name))
            combined[name] = _count(before.get(name)) + new
    reasons = _add_reasons(
        before.get(REJECTED_REASONS), report.get(REJECTED_REASONS), already.get(REJECTED_REASONS)
    )
    if reasons or REJECTED_REASONS in report:
        combined[REJECTED_REASONS] = reasons
    keys: list[str] = []
    for listed in (before.get(REJECTED_KEYS), report.get(REJECTED_KEYS)):
        for key in listed if isinstance(listed, list) else []:
            add_rejected_key(keys, str(key))
    if keys or REJECTED_KEYS in report:
        combined[REJECTED_KEYS] = keys
    return combined


def _add_reasons(earlier: object, now: object, added: object) -> dict[str, int]:
    """``earlier`` reason counts plus those of ``now`` not in ``added`` yet, still bounded."""
    total = {str(k): _count(v) for k, v in earlier.items()} if isinstance(earlier, dict) else {}
    before = added if isinstance(added, dict) else {}
    for reason, count in now.items() if isinstance(now, dict) else []:
        new = _count(count) - _count(before.get(reason))
        if new:
            add_rejected_reason(total, str(reason), new)
    return total


def _count(value: object) -> int:
    """A count from a run log, 0 for anything that is not one (a hand-edited or older file)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
