"""The files trackhook leaves on disk, defined once: their field names and their format versions.

A run log, a spool file or a delivery position outlives the process that wrote it: it is read by
``trackhook show``/``runs``/``sync``, by a later session of the run, and by other versions of
trackhook. Each kind carries a format version. A reader reads every version up to its own (the
ones before the version existed count as 1) and refuses a newer one with ``FormatTooNewError``,
which names the trackhook to install, rather than misread it (or, worse, overwrite it).

=================  ====================================  ===========================================
kind               where the version is                  versions (first trackhook that writes it)
=================  ====================================  ===========================================
run log            ``"format"``, its first field         1: no ``format`` (0.1.0); 2: (0.2.0)
spool file         its name: ``<name>.v<N>.jsonl``       1: ``<name>.jsonl`` (0.1.0); 2: ``.v2``,
                                                         the same lines (0.2.0); 3: ``.v3``, lines
                                                         may mark their values as parameters
                                                         (``"p"``) and name their files
                                                         (``"f"``) (0.2.0)
delivery position  ``"format"`` in the ``.offset`` JSON  1: a bare offset (0.1.0); 2: JSON (0.2.0)
=================  ====================================  ===========================================

The ``closed`` marker (the status, as text) and the lock files (empty) carry no fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from trackhook.__about__ import __version__
from trackhook.errors import TrackhookError

__all__ = [
    "POSITION_FORMAT",
    "RUN_LOG_FORMAT",
    "SPOOL_FORMAT",
    "FormatTooNewError",
    "check_format",
    "run_log_format",
    "spool_format",
    "spool_name",
]

# -- the run log: <run_id>.json ------------------------------------------------------------------

RUN_LOG_FORMAT: Final = 2
FORMAT: Final = "format"
"""The version of a run log or a position file; written first in the run log."""
RUN_ID: Final = "run_id"
TAG: Final = "tag"
STATUS: Final = "status"
START_TIME: Final = "start_time"
END_TIME: Final = "end_time"
OWNER: Final = "owner"
"""``{"host": ..., "pid": ...}`` of the session that wrote it last."""
OWNER_HOST: Final = "host"
OWNER_PID: Final = "pid"
RANK: Final = "rank"
CONFIG_SOURCE: Final = "config_source"
TRACKERS: Final = "experiment_trackers"
"""One entry per tracker (``TRACKER_*`` fields)."""
NOT_LOADED: Final = "trackers_not_loaded"
SPOOL_TROUBLE: Final = "spool"
"""Present when the disk refused values (``TROUBLE_*`` fields)."""
TROUBLE_FOLDER: Final = "folder"
TROUBLE_ERROR: Final = "error"
TROUBLE_HELD: Final = "held_values"
"""Values still held in memory when the run log was written."""
TROUBLE_LOST: Final = "lost_values"
"""Values that never reached the spool: no tracker received them."""
FILES_HELD: Final = "files_held"
"""Present when the run holds files: how many, and their bytes on disk (``HELD_*`` fields)."""
HELD_FOLDER: Final = "folder"
"""Relative to the run log store's folder."""
HELD_COUNT: Final = "count"
HELD_BYTES: Final = "bytes"
CLOSED_BY: Final = "closed_by"
RESUMED_AT: Final = "resumed_at"
"""When each later session of the run (the same run_id again) opened it."""
PARAM_KEYS: Final = "param_keys"
"""The keys tracked with ``track_params`` (numbers included), which trackers received as
parameters: ``trackhook show`` lists them as parameters. Absent when there are none (and in run
logs written before 0.2.0, whose readers ignore it)."""
VALUE_COUNT: Final = "value_count"
"""How many values ``METRICS`` holds, nested dicts counted by their leaves."""
METRICS: Final = "user_defined_metrics"
"""The values, written last so that every other field is read without them."""

# one entry of TRACKERS
TRACKER_NAME: Final = "name"
TRACKER_TYPE: Final = "type"
TRACKER_ON_ERROR: Final = "on_error"
TRACKER_CONFIG: Final = "config"
TRACKER_RUN: Final = "run"
"""What the tracker said of the run when it opened it (its own ids and links)."""
TRACKER_DELIVERY: Final = "delivery"
"""The delivery report (``DELIVERED`` ... fields)."""

# the delivery report of one tracker
DELIVERED: Final = "delivered"
RETRIED: Final = "retried"
RENAMED: Final = "renamed"
TRUNCATED: Final = "truncated"
UNDELIVERED: Final = "undelivered"
SKIPPED: Final = "skipped"
REJECTED: Final = "rejected"
LAST_ERROR: Final = "last_error"
RECOVERED_ERROR: Final = "recovered_error"
REJECTED_REASONS: Final = "rejected_reasons"
REJECTED_KEYS: Final = "rejected_keys"

# -- a spool line: {"t": time, "s": step, "v": values[, "p": 1][, "f": [keys]]} ------------------

SPOOL_FORMAT: Final = 3
SPOOL_TIME: Final = "t"
SPOOL_STEP: Final = "s"
SPOOL_VALUES: Final = "v"
SPOOL_AS_PARAMS: Final = "p"
"""``1`` on a line of ``track_params``: its numbers reach trackers as parameters, not metrics.
Absent (format 2 and older, and ``track_this``): numbers are metrics."""
SPOOL_FILES: Final = "f"
"""The dotted keys (as ``values.flatten`` yields them) whose value is a held file's record
(``FILE_*`` fields) rather than a dict of values; absent when the line holds no file."""

# -- a held file, as the spool and the run log's values record it --------------------------------

FILE_PATH: Final = "file"
"""Where the content is held, relative to the run log store's folder (``<run_id>/files/...``)."""
FILE_NAME: Final = "name"
FILE_KIND: Final = "kind"
"""``"file"`` or ``"image"``."""
FILE_SHA256: Final = "sha256"
FILE_SIZE: Final = "size"
SPOOL_LATEST_TIME: Final = 9.2e15
"""Seconds: beyond this, the time in milliseconds (as trackers store it) overflows an int64."""
SPOOL_SUFFIX: Final = ".jsonl"

# -- a delivery position: <run_id>/delivery/<tracker>/<spool>.offset ------------------------------

POSITION_FORMAT: Final = 2
POSITION_OFFSET: Final = "offset"
POSITION_VALUES_DONE: Final = "values_done"

# -- the kinds of file, as messages name them ---------------------------------------------------

RUN_LOG: Final = "run log"
SPOOL_FILE: Final = "spool file"
POSITION_FILE: Final = "delivery position"

FIRST_WRITTEN_BY: Final[Mapping[str, Mapping[int, str]]] = {
    RUN_LOG: {1: "0.1.0", 2: "0.2.0"},
    SPOOL_FILE: {1: "0.1.0", 2: "0.2.0", 3: "0.2.0"},
    POSITION_FILE: {1: "0.1.0", 2: "0.2.0"},
}
"""The first trackhook version that writes each format of each kind of file."""

_NEWEST: Final = {RUN_LOG: RUN_LOG_FORMAT, SPOOL_FILE: SPOOL_FORMAT, POSITION_FILE: POSITION_FORMAT}
"""The newest format of each kind, the one this trackhook writes and the last it reads."""


class FormatTooNewError(TrackhookError, ValueError):
    """A file was written by a newer trackhook, in a format this one cannot read.

    Refused rather than misread, and never overwritten: install the trackhook the message names.
    """

    def __init__(self, path: Path, kind: str, found: int) -> None:
        self.path = path
        self.kind = kind
        self.found = found
        needed = FIRST_WRITTEN_BY[kind].get(found)
        self.install = f"pip install 'trackhook{f'>={needed}' if needed else f'>{__version__}'}'"
        """The command that installs a trackhook that reads the file."""
        super().__init__(
            f"{path} is a {kind} of format {found}, written by a newer trackhook; trackhook "
            f"{__version__} reads up to format {_NEWEST[kind]}: upgrade with {self.install}"
        )


def check_format(path: Path, kind: str, found: int) -> int:
    """``found``, the format of the ``kind`` at ``path``; ``FormatTooNewError`` when it is newer
    than this trackhook reads."""
    if found > _NEWEST[kind]:
        raise FormatTooNewError(path, kind, found)
    return found


def run_log_format(path: Path, document: Mapping[str, object]) -> int:
    """The format of the run log ``document`` read from ``path`` (1 when it names none)."""
    found = document.get(FORMAT, 1)
    if type(found) is not int or found < 1:
        raise ValueError(f"{path} is not a run log: its format is {found!r}")
    return check_format(path, RUN_LOG, found)


_VERSIONED_SPOOL = re.compile(r"\.v([0-9]+)\.jsonl$")


def spool_name(stem: str) -> str:
    """The file name of a new spool file of this trackhook's format."""
    return f"{stem}.v{SPOOL_FORMAT}{SPOOL_SUFFIX}"


def spool_format(path: Path) -> int:
    """The format of the spool file ``path``, read from its name; ``FormatTooNewError`` when it
    is newer than this trackhook reads. A name without a version is format 1."""
    match = _VERSIONED_SPOOL.search(path.name)
    return check_format(path, SPOOL_FILE, int(match[1]) if match else 1)
