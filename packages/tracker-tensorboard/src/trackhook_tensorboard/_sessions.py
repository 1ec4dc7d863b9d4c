"""The HPARAMS session of a run, one small event file per close, the latest read first.

TensorBoard keeps the **first** session record of a run folder: its event accumulator reads the
folder's event files in the order of their names, and keeps the summary metadata of a tag (where
the HPARAMS plugin's session start and end live) from the first event that carries it, whatever
its step. So a run continued under the same run_id would show its first close forever.

Each close therefore writes its session into an event file of its own, named to sort before every
other event file of the folder, the later close before the earlier one:
``events.out.tfevents.<10**9 - n>.<host>.<pid>.<k>.trackhook-session`` for the run's n-th close
(a 10-digit name starting with ``0``, where writers' event files carry a timestamp of ten digits
starting with ``1`` or more). The session it writes holds every parameter of the previous close's
session, read back from its file, overwritten by the parameters of this one, so the HPARAMS tab
shows the union of the run's parameters (the latest value winning), its first start time and its
latest status. No file is ever changed once written: a TensorBoard that reads the folder while it
grows never sees a record move.

This module imports TensorBoard, so only the delivery side (the tracker's hooks) imports it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from trackhook import ParamValue, Status
from trackhook_tensorboard._events import session_events
from trackhook_tensorboard._writer import (
    EVENT_FILE_PREFIX,
    event_file_name,
    framed,
    header_event,
)

__all__ = ["latest_session", "write_session"]

_SUFFIX = ".trackhook-session"
_LAST_NUMBER = 10**9  # the n-th close is named 10**9 - n: 0999999999, 0999999998, ...


def write_session(
    folder: Path,
    hparams: Mapping[str, ParamValue],
    started_at: float,
    status: Status,
    ended_at: float,
) -> Path:
    """Write the run's session as of this close into a new file of ``folder``; its path."""
    number, earlier = latest_session(folder)
    if earlier is not None and earlier.start_time_secs:  # the run started at its first opening
        started_at = min(started_at, earlier.start_time_secs)
    events = session_events(hparams, started_at, status, ended_at, earlier=earlier, step=number + 1)
    name = event_file_name(_LAST_NUMBER - (number + 1), _SUFFIX)
    content = framed([header_event(time.time()), *events])
    # Written under a name TensorBoard does not read, then renamed: the file appears whole.
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name.removeprefix(EVENT_FILE_PREFIX)}.partial"
    try:
        partial.write_bytes(content)
        path = folder / name
        os.rename(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    return path


def latest_session(folder: Path) -> tuple[int, plugin_data_pb2.SessionStartInfo | None]:
    """How many closes ``folder``'s session files count, and the session start TensorBoard reads
    (that of the first session file, in TensorBoard's order, that holds one)."""
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(folder)
            if entry.name.startswith(EVENT_FILE_PREFIX) and entry.name.endswith(_SUFFIX)
        )
    except FileNotFoundError:
        return 0, None
    number = 0
    for name in names:
        key = name.removeprefix(EVENT_FILE_PREFIX).split(".", 1)[0]
        if key.isdigit():
            number = max(number, _LAST_NUMBER - int(key))
    for name in names:
        start = _session_start(folder / name)
        if start is not None:
            return number, start
    return number, None


def _session_start(path: Path) -> plugin_data_pb2.SessionStartInfo | None:
    """The session start of the session file ``path``; ``None`` if it has none or is unreadable."""
    try:
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
                    return hparams_metadata.parse_session_start_info_plugin_data(
                        value.metadata.plugin_data.content
                    )
    except Exception:  # a file TensorBoard cannot read either: the next one is read
        return None
    return None
