"""The run log: the typed record of every tracked value and its JSON face.

Inside, values are kept as ``key -> step -> value``, which is unambiguous. The JSON face is the
shape runnable's run log uses for ``user_defined_metrics``: a key tracked only at step 0 maps to
its value; any other key maps to ``{"<step>": value}``; nested dicts stay nested. Tracking the same
key at the same step again replaces the value.

The file is strict JSON: NaN and the infinities, which JSON cannot hold, are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from trackhook.store import SpoolEntry, iter_spool
from trackhook.values import Value

__all__ = [
    "CUMULATIVE_COUNTS",
    "MAX_REJECTED_KEYS",
    "MAX_REJECTED_REASONS",
    "OTHER_REASONS",
    "CountsWritten",
    "MetricsRecord",
    "exclusive_lock",
    "merge_not_loaded",
    "owner_is_gone",
    "read_run_log",
    "record_from_spools",
    "start_time_of",
    "strict_json",
    "update_run_log",
    "with_run_log",
    "write_run_log",
]


class MetricsRecord:
    """Every value of a run, by key and step, safe to update from several threads."""

    def __init__(self) -> None:
        self._values: dict[str, dict[int, Value]] = {}
        self._lock = threading.Lock()

    def update(self, step: int, values: Mapping[str, Value]) -> None:
        with self._lock:
            for key, value in values.items():
                steps = self._values.get(key)
                if steps is None:
                    self._values[key] = {step: value}
                else:
                    steps[step] = value

    def merge_entries(self, entries: Iterable[SpoolEntry]) -> None:
        for entry in entries:
            self.update(entry.step, entry.values)

    def value_count(self) -> int:
        with self._lock:
            return sum(len(steps) for steps in self._values.values())

    def as_user_defined_metrics(self) -> dict[str, Any]:
        with self._lock:
            face: dict[str, Any] = {}
            for key, steps in self._values.items():
                if len(steps) == 1 and 0 in steps:
                    face[key] = steps[0]
                else:
                    face[key] = {str(step): steps[step] for step in sorted(steps)}
            return copy.deepcopy(face)  # the caller's to change: the record stays as tracked


def record_from_spools(paths: Iterable[Path]) -> MetricsRecord:
    """The record of every value in the given spool files, folded in the order it was tracked."""
    entries = [entry for path in paths for entry in iter_spool(path)]
    entries.sort(key=lambda entry: entry.timestamp)
    record = MetricsRecord()
    record.merge_entries(entries)
    return record


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

    The temporary file is created new (never through a symlink planted at its name) and removed
    whatever goes wrong (a full disk, a file-size limit): a failed write leaves the run log as it
    was and nothing beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    content = strict_json(dict(document))
    # Indented for people; past a size where people read it with `trackhook show` instead, compact,
    # because indenting moves json to its pure-Python encoder (seconds for a million values).
    indent = 4 if len(str(content.get("user_defined_metrics", ""))) < 200_000 else None
    text = json.dumps(content, indent=indent, allow_nan=False)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with open(os.open(temporary, flags, 0o666), "w", encoding="utf-8") as file:
            file.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_run_log(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


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
    writes back a stale copy. ``change`` returns ``None`` to leave the file as it is. Returns what
    was written.

    Raises ``OSError`` when the run log cannot be written; the file is then left as it was.
    """

    def write(current: dict[str, Any]) -> dict[str, Any] | None:
        document = change(current)
        if document is not None:
            write_run_log(path, document)
        return document

    return with_run_log(path, write)


def with_run_log(path: Path, look: Callable[[dict[str, Any]], _T]) -> _T:
    """``look(the run log as it is now)``, while no other writer can change it.

    ``look`` gets ``{}`` when there is no readable run log. Raises ``TimeoutError`` (an
    ``OSError``) when another process holds the lock for more than a minute.
    """
    lock = path.with_name(f".{path.name}.lock")
    with exclusive_lock(lock, _LOCK_WAIT) as held:
        if not held:
            raise TimeoutError(
                errno.ETIMEDOUT,
                f"another process has held the run log's lock for {_LOCK_WAIT:.0f} s",
                str(lock),
            )
        return look(_current(path))


def _current(path: Path) -> dict[str, Any]:
    """The run log at ``path``; ``{}`` when there is none, or none readable (it is replaced)."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
            document = json.loads(file.read())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


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
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def start_time_of(document: Mapping[str, Any]) -> float | None:
    """The run log's ``start_time`` as a timestamp, or ``None`` when it has none readable."""
    try:
        return datetime.fromisoformat(str(document["start_time"])).timestamp()
    except (KeyError, ValueError):
        return None


CUMULATIVE_COUNTS = ("delivered", "retried", "renamed", "truncated", "skipped", "rejected")
"""Delivery counts that add up across the sessions of a run (a resumed run, a sync)."""

REJECTED_REASONS = "rejected_reasons"
"""Values a tracker refused for their content, counted by reason: they add up like the counts."""
REJECTED_KEYS = "rejected_keys"
"""The first few keys a tracker refused: the union of every writer's, bounded."""
MAX_REJECTED_REASONS = 5
"""Distinct rejection reasons kept per tracker; further ones are counted under ``OTHER_REASONS``."""
OTHER_REASONS = "(other reasons)"
MAX_REJECTED_KEYS = 5


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
            str(item.get("name")): dict(item)
            for item in (recorded if isinstance(recorded, list) else [])
            if isinstance(item, dict)
        }
        for entry in entries:
            name = str(entry["name"])
            earlier = listed.get(name, {})
            merged = {**earlier, **entry}
            if not entry.get("run") and earlier.get("run"):
                merged["run"] = earlier["run"]
            merged["delivery"] = _add_delivery(
                earlier.get("delivery"), entry["delivery"], self._added.get(name)
            )
            listed[name] = merged
        return list(listed.values())

    def remember(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """``entries`` are in the run log now: call once the write has succeeded."""
        for entry in entries:
            self._added[str(entry["name"])] = entry["delivery"]


def merge_not_loaded(
    recorded: object, not_loaded: Iterable[Mapping[str, Any]], loaded: Iterable[str]
) -> list[dict[str, Any]]:
    """The run log's trackers that did not load, updated by one writer.

    A tracker this writer ``loaded`` is taken off the list; one it could not load either replaces
    the recorded entry of that name.
    """
    fresh = [dict(item) for item in not_loaded]
    gone = {*loaded, *(str(item.get("name")) for item in fresh)}
    kept = [
        dict(item)
        for item in (recorded if isinstance(recorded, list) else [])
        if isinstance(item, dict) and str(item.get("name")) not in gone
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
    keys = _union(before.get(REJECTED_KEYS), report.get(REJECTED_KEYS), MAX_REJECTED_KEYS)
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
            name = str(reason)
            if name not in total and len(total) >= MAX_REJECTED_REASONS:
                name = OTHER_REASONS
            total[name] = total.get(name, 0) + new
    return total


def _union(earlier: object, now: object, most: int) -> list[str]:
    """The items of ``earlier`` then the new ones of ``now``, at most ``most`` of them."""
    union: list[str] = []
    for item in [
        *(earlier if isinstance(earlier, list) else []),
        *(now if isinstance(now, list) else []),
    ]:
        if str(item) not in union and len(union) < most:
            union.append(str(item))
    return union


def _count(value: object) -> int:
    """A count from a run log, 0 for anything that is not one (a hand-edited or older file)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
