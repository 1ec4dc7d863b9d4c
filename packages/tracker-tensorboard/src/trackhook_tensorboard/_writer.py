"""``RunWriter``: the event file this process writes for one trackhook run.

TensorBoard's ``EventFileWriter`` hands every event to a daemon thread through a queue of ten; the
tracker's hooks already run on trackhook's delivery thread, so a second thread would only add a
hand-off per value and a queue that a process exit could drop. This writer frames the records
with TensorBoard's own ``RecordWriter`` and writes each batch with one unbuffered write on the
calling thread: once ``trackhook_log_batch`` returns, its values are in the file (handed to the
operating system, not fsynced, like trackhook's spool).

This module imports TensorBoard, so only the delivery side (and the client context) imports it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SourceMetadata
from tensorboard.summary.writer.record_writer import RecordWriter

from trackhook import TrackhookError
from trackhook_tensorboard._events import scalar_event, text_event

__all__ = [
    "EVENT_FILE_PREFIX",
    "RunWriter",
    "RunWriterClosedError",
    "event_file_name",
    "framed",
    "header_event",
]

_FILE_VERSION = "brain.Event:2"  # tells TensorBoard that steps may go back without a restart
_files = itertools.count()
EVENT_FILE_PREFIX = "events.out.tfevents."
"""How TensorBoard's event files are named: it reads only the files of a folder named so."""


def event_file_name(number: int, suffix: str) -> str:
    """A new event file's name, as TensorBoard names them: files sort by ``number`` (a time),
    and host, process and a counter keep two writers apart."""
    return (
        f"{EVENT_FILE_PREFIX}{number:010d}.{socket.gethostname()}.{os.getpid()}."
        f"{next(_files)}{suffix}"
    )


class RunWriterClosedError(TrackhookError):
    """A summary was added after the run's event file was closed."""


class RunWriter:
    """Writes events into one event file of the run folder ``log_dir``; safe across threads.

    It is what ``trackhook.get_experiment_tracker_context()`` yields: summaries added with it land
    in the same TensorBoard run as the tracked values. ``log_dir`` is the run folder, for a writer
    of your own (``torch.utils.tensorboard.SummaryWriter(client.log_dir)`` adds a file beside).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._closed = False
        self._file: io.FileIO | None = None
        with self._lock:
            self._open_file()

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        """A scalar point at ``step`` (``SummaryWriter.add_scalar``'s arguments, in its order)."""
        self.add_events([scalar_event(tag, value, step, _now(wall_time))])

    def add_text(self, tag: str, text: str, step: int, wall_time: float | None = None) -> None:
        """A text point at ``step``, shown in the TEXT tab."""
        self.add_events([text_event(tag, text, step, _now(wall_time))])

    def add_events(self, events: Iterable[Event]) -> None:
        """Write ``events`` (TensorBoard ``Event`` protos) at once, or none of them.

        A write that fails (a full disk) is cut off the file again, so that the batch, offered
        again, is not read twice by TensorBoard; if even that fails, the file is abandoned and the
        next call starts a new event file.
        """
        records = framed(events)
        with self._lock:
            if self._closed:
                raise RunWriterClosedError(
                    f"the event file of {self.log_dir} is closed (its run has ended); add "
                    "summaries inside the run's get_experiment_tracker_context() block"
                )
            self._write(self._file or self._open_file(), records)

    def flush(self) -> None:
        """Nothing to do: every call has already handed its events to the operating system."""

    def close(self) -> None:
        """Close the event file; further summaries are refused."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def _open_file(self) -> io.FileIO:
        """A new event file, named as TensorBoard names them so that it sorts after older ones."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        path = self.log_dir / event_file_name(int(now), ".trackhook")
        file = io.FileIO(path, "xb")
        try:
            _write_all(file, framed([header_event(now)]))
        except BaseException:
            # A file without its header would make TensorBoard drop out-of-order steps; the
            # caller's error is the one to report.
            with contextlib.suppress(OSError):
                file.close()
                path.unlink(missing_ok=True)
            raise
        self._file = file
        return file

    def _write(self, file: io.FileIO, records: bytes) -> None:
        start = file.tell()
        try:
            _write_all(file, records)
        except BaseException:
            self._cut_back(file, start)
            raise

    def _cut_back(self, file: io.FileIO, start: int) -> None:
        """Remove a failed write's bytes; abandon the file when even that fails."""
        try:
            file.truncate(start)
            file.seek(start)
        except OSError:
            self._file = None
            # The file is abandoned either way; the caller's error is the one to report.
            with contextlib.suppress(OSError):
                file.close()


def _write_all(file: io.FileIO, data: bytes) -> None:
    written = 0
    while written < len(data):
        written += file.write(data[written:])


def header_event(wall_time: float) -> Event:
    """The first event of an event file: version 2, so that TensorBoard never takes a lower step
    for a restart and drops points."""
    return Event(
        wall_time=wall_time,
        file_version=_FILE_VERSION,
        source_metadata=SourceMetadata(writer="trackhook_tensorboard"),
    )


def framed(events: Iterable[Event]) -> bytes:
    """``events`` in TensorBoard's record framing (length, CRCs), ready to append to a file."""
    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    for event in events:
        records.write(event.SerializeToString())
    return buffer.getvalue()


def _now(wall_time: float | None) -> float:
    return time.time() if wall_time is None else wall_time
