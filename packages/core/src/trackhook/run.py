"""A run: the values tracked in it, its run log, and the delivery threads that feed its trackers.

The data path, in order: ``Run.track`` checks and normalises the values (``values``), appends one
line to this process's spool (``store.SpoolWriter``) and returns: no value is held in memory. Each
tracker's ``TrackerWorker`` (``worker``) repeats passes of its ``TrackerDelivery`` (``delivery``)
in the background: a pass reads the spool, makes the values fit the tracker and calls its hooks.
The thread that flushes the spool also feeds the run's ``ValueIndex`` (``index``), from which
closing streams the run log's values.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook import formats
from trackhook.delivery import TrackerDelivery
from trackhook.errors import (
    TrackerDeliveryError,
    TrackhookError,
    warn_in_background,
)
from trackhook.files import TrackedContent
from trackhook.held import ContentHolder, held_usage, hold_all
from trackhook.lines import encode_line, plain_float_line
from trackhook.ranks import current_rank
from trackhook.records import RunInfo, Status
from trackhook.resume import warn_if_closed_run_continues
from trackhook.runid import check_run_id, check_tag
from trackhook.runlog import (
    METRICS,
    VALUE_COUNT,
    CountsWritten,
    merge_not_loaded,
    owner_is_gone,
    read_run_log_header,
    start_time_of,
    update_run_log,
)
from trackhook.store import RunStore, SpoolWriter, spool_rank
from trackhook.values import check_step, normalise_values
from trackhook.variables import (
    CONFIG_VARIABLE,
    OWNER_VARIABLE,
    RUN_ID_VARIABLE,
    STORE_VARIABLE,
    TAG_VARIABLE,
)
from trackhook.worker import TrackerWorker, wait_for_workers

if TYPE_CHECKING:
    from trackhook.config import LoadedConfig
    from trackhook.index import ValueIndex
    from trackhook.trackers import TrackerNotLoaded

__all__ = ["Run"]


class Run:
    """An open or finished run.

    ``user_defined_metrics`` is every value of the run (of this rank), in runnable's shape, read
    from the spool on disk when asked for.
    """

    def __init__(
        self,
        run_id: str,
        tag: str,
        loaded: LoadedConfig,
        *,
        owner: bool,
        on_tracker_opened: Callable[[], None] | None = None,
    ) -> None:
        """Check the names and set the run up: no file, no tracker, no thread (``open`` does)."""
        check_run_id(run_id)  # before anything starts: no thread, no file for a bad name
        check_tag(tag)
        self._owner_token = owner_token() if owner else os.environ.get(OWNER_VARIABLE, "")
        """The process that delivers the run: this one, or the one this process joined."""
        self.run_id = run_id
        self.tag = tag
        self.status = "RUNNING"
        self.owner = owner
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.rank = current_rank()
        self._loaded = loaded
        self._on_tracker_opened = on_tracker_opened
        self._store = RunStore(loaded.config.run_log_store)
        self._sends = self.rank in (None, 0) or loaded.config.ranks == "all"
        """Whether this process's values reach trackers: rank zero's (or every rank's)."""
        self._counts_written = CountsWritten()
        self._run_log_warned = False
        self._index: ValueIndex | None = None
        """Created by the first pass that needs it: a process that joins a run never needs one."""
        self._index_lock = threading.Lock()
        self._fatal: TrackerDeliveryError | None = None
        self._closed = False
        self._stop_flushing = threading.Event()
        self._not_loaded: list[TrackerNotLoaded] = []
        self._workers: list[TrackerWorker] = []
        self.tracked_environment: dict[str, str] = {}
        """``TRACKHOOK_TRACK_*`` variables already tracked, by name: not tracked again at close."""
        self.info = RunInfo(run_id=run_id, tag=tag, started_at=self.started_at)

    _spool: SpoolWriter
    """This process's spool file, created by ``open``."""

    def open(self) -> Run:
        """Open the run: its trackers built and their delivery threads started, its run log
        written (the owner's), its spool flushed in the background. Returns the run.

        A newer trackhook's files are refused (``FormatTooNewError``) before anything starts.
        """
        if self.owner:
            self._store.check_formats(self.run_id)
            self.started_at = self._earlier_start_time() or self.started_at
            self.info = RunInfo(run_id=self.run_id, tag=self.tag, started_at=self.started_at)
        self._spool = SpoolWriter(self._spool_path(), write_through=not self.owner)
        self._workers = self._start_delivery()
        if self.owner:
            warn_if_closed_run_continues(self.run_log_path, self.run_id)
            self._write_run_log(closing=False)
            threading.Thread(
                target=self._flush_spool_periodically, name="trackhook-spool", daemon=True
            ).start()
        for worker in self._workers:
            worker.start()
        return self

    def _start_delivery(self) -> list[TrackerWorker]:
        """A delivery thread (not started yet) per configured tracker, when this process sends;
        a process that joins another's run only spools: the owner delivers its file."""
        if not (self._sends and self.owner):
            return []
        from trackhook.trackers import build_trackers  # imports pydantic: only once a run opens

        built = build_trackers(self._loaded)
        self._not_loaded = built.not_loaded
        deliveries = [
            TrackerDelivery(
                tracker,
                self.info,
                self._store,
                self._loaded.config.delivery,
                own_spool=self._spool,
                on_opened=self._on_tracker_opened,
            )
            for tracker in built.loaded
        ]
        for delivery in deliveries:
            delivery.reopen_run()
        return [TrackerWorker(delivery, on_fatal=self._on_fatal) for delivery in deliveries]

    def _flush_spool_periodically(self) -> None:
        """Hand the spool to the OS every ``interval``, even while every tracker hangs in a hook.

        This, not the delivery threads, is what bounds what a killed process can lose. It also
        indexes the spool once ``_INDEX_BEHIND_BYTES`` have come since the last time, so that a
        long run's close indexes only a bounded tail; a run shorter than that is indexed at close
        alone, and its caller never shares the interpreter with indexing while it tracks.
        """
        interval = self._loaded.config.delivery.interval
        indexed_up_to = 0
        while not self._stop_flushing.wait(interval):
            self._spool.flush()
            with suppress(OSError):  # a full disk: indexed again at close, which reports it
                size = self._spool.path.stat().st_size
                if size - indexed_up_to >= _INDEX_BEHIND_BYTES:
                    self._live_index().add(self._rank_files(), own=self._spool.path)
                    indexed_up_to = size

    def _spool_path(self) -> Path:
        """This process's spool file; a rank that sends nothing keeps its values in a folder no
        tracker is fed from, for its own run log."""
        path = self._store.new_spool_path(self.run_id, self.rank)
        return path if self._sends else path.parent.parent / _KEPT_FOLDER / path.name

    def _rank_files(self) -> list[Path]:
        """Every file holding a value of this run for this rank's run log: the spool files of
        every session and process of the run_id, and what ranks that send nothing kept."""
        kept = self._store.root / self.run_id / _KEPT_FOLDER
        files = [*self._store.spool_files(self.run_id), *sorted(kept.glob("*.jsonl"))]
        return [path for path in files if spool_rank(path) == self.rank]

    def _live_index(self) -> ValueIndex:
        with self._index_lock:
            if self._index is None:
                self._index = self._new_index()
            return self._index

    def _new_index(self) -> ValueIndex:
        """An index of the run's values; ``sqlite3`` is imported only now, not with the engine
        that the first ``track_this`` loads (a run shorter than 16 MiB indexes only at close)."""
        from trackhook.index import ValueIndex, index_folder

        return ValueIndex(index_folder(self._store.root, self.run_id))

    # -- the public face ---------------------------------------------------------------------------

    @property
    def user_defined_metrics(self) -> dict[str, Any]:
        """Every value: ``key -> value`` at step 0 only, else ``key -> {"<step>": value}``.

        Read from the spool files of the run (every session and process of this rank) when
        asked for, and built in memory: for a long run, ``trackhook show`` reads less.
        """
        if not self._closed:
            self._spool.flush()
            index = self._live_index()
            index.add(self._rank_files(), own=self._spool.path)
            return index.as_user_defined_metrics()
        with self._new_index() as index:
            index.add(self._rank_files(), own=self._spool.path)
            return index.as_user_defined_metrics()

    @property
    def closed(self) -> bool:
        """True once the run has begun closing: it takes no more values."""
        return self._closed

    @property
    def run_log_path(self) -> Path:
        """Where the run log of this run (of this rank) is written."""
        return self._store.run_log_path(self.run_id, self.rank)

    @property
    def trackers(self) -> list[str]:
        """Names of the trackers this process sends the run's values to."""
        return [worker.tracker.name for worker in self._workers]

    def child_environment(self) -> dict[str, str]:
        """The environment variables through which a child process joins this run.

        A child process that tracks with them spools its values into this run, and the process
        that owns the run delivers them. ``os.environ`` holds those of the run opened last that
        is still open (a forked child gets those of its thread's run); to point a subprocess at
        a given run, whichever thread starts it, pass them::

            subprocess.run(command, env={**os.environ, **run.child_environment()})
        """
        variables = {
            RUN_ID_VARIABLE: self.run_id,
            TAG_VARIABLE: self.tag,
            OWNER_VARIABLE: self._owner_token,
            STORE_VARIABLE: str(self._store.root.resolve()),
        }
        if self._loaded.path is not None:
            variables[CONFIG_VARIABLE] = str(self._loaded.path.resolve())
        return variables

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, tag={self.tag!r}, status={self.status!r})"

    # -- tracking ------------------------------------------------------------------------------

    def track(self, step: object, values: Mapping[str, object], *, as_params: bool = False) -> None:
        """Record ``values`` at ``step`` and hand them to the delivery threads, without waiting.

        ``as_params``: every value reaches trackers as a parameter, numbers included.
        """
        if self._fatal is not None:
            raise self._fatal
        checked_step = check_step(step)
        # the common call, floats under keyword names, has nothing to normalise
        line = None if as_params else plain_float_line(time.time(), checked_step, values)
        if line is None:
            line = self._normalised_line(checked_step, values, as_params)
            if line is None:
                return
        # The spool takes the line under its lock, or refuses it once close() has begun.
        if not self._spool.append_line(line):
            raise TrackhookError(
                f"run {self.run_id!r} is closed; open a new one with trackhook.start_run()"
            )

    def _normalised_line(
        self, step: int, values: Mapping[str, object], as_params: bool
    ) -> bytes | None:
        """The spool line of ``values`` normalised, their files held; ``None``: nothing to track.

        :raises InvalidValueError: before anything of the call is held.
        """
        files: list[str] = []
        clean = normalise_values(values, files=files)
        if clean and files:
            clean = self._hold_files(clean, files)
        if not clean:
            return None
        return encode_line(time.time(), step, clean, as_params=as_params, files=files)

    def _hold_files(self, clean: dict[str, Any], files: list[str]) -> dict[str, Any]:
        """Copy the call's files and images into the run store: the values, with their records.

        Bad input raises ``InvalidValueError`` and holds nothing. A store that cannot hold them
        (a full disk) does not fail the caller: the call is tracked without its files, and a
        warning names the folder and the cause.
        """
        try:
            return hold_all(ContentHolder(self._store.root, self.run_id), clean)
        except OSError as error:
            warn_in_background(
                f"could not hold the files tracked at {', '.join(map(repr, files))} in "
                f"{self._store.root / self.run_id} ({error.strerror or error}): they are not "
                "tracked; the call's other values are"
            )
            without = _without_files(clean)
            files.clear()
            return without

    def client_context_of(self, name: str | None) -> Any:
        """The native client context of tracker ``name`` (or of the only real tracker)."""
        workers = [w for w in self._workers if w.tracker.settings.type != "do-nothing"]
        if name is not None:
            workers = [w for w in self._workers if w.tracker.name == name]
            if not workers:
                raise TrackhookError(
                    f"no tracker named {name!r} in run {self.run_id!r}; "
                    f"its trackers are: {', '.join(self.trackers) or 'none'}"
                )
        if not workers:
            return nullcontext()
        if len(workers) > 1:
            raise TrackhookError(
                "several trackers are configured "
                f"({', '.join(w.tracker.name for w in workers)}): name the one you want, e.g. "
                f"get_experiment_tracker_context({workers[0].tracker.name!r})"
            )
        worker = workers[0]
        if not worker.opened.wait(self._loaded.config.delivery.flush_timeout):
            raise TrackhookError(
                f"tracker {worker.tracker.name!r} has not opened run {self.run_id!r} yet"
                + (f" (last error: {worker.report.last_error})" if worker.report.last_error else "")
            )
        return worker.tracker.hooks.client_context(self.info)

    # -- closing -------------------------------------------------------------------------------

    def close(self, status: Status, *, at_exit: bool = False) -> None:
        """Deliver, close the run in its trackers, and write the run log; idempotent.

        ``at_exit``: closing from an exit handler; see ``TrackerWorker.finish``.
        """
        if not self._spool.seal():
            return  # closed already, or closing in another thread
        self._closed = True
        timeout = self._loaded.config.delivery.flush_timeout
        for worker in self._workers:
            worker.finish(status, timeout, at_exit=at_exit)
        wait_for_workers(self._workers, timeout)
        self._stop_flushing.set()
        self._spool.close()
        self.status = status
        self.ended_at = time.time()
        for tracker in self._not_loaded:
            warn_in_background(
                f"tracker {tracker.name!r} was not loaded ({tracker.error}); the values of run "
                f"{self.run_id!r} are kept in {self._store.spool_dir(self.run_id)}: deliver them "
                f"with `trackhook sync {self.run_id}` once the plugin is fixed"
            )
        if self.owner:
            self._write_run_log(closing=True)
        with self._index_lock:
            if self._index is not None:
                self._index.close()
        if self._fatal is not None:
            raise self._fatal

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the parent's file buffer and threads without touching them."""
        self._closed = True
        self._spool.abandon()

    def flush(self) -> None:
        self._spool.flush()

    def _on_fatal(self, tracker_name: str, error: BaseException) -> None:
        self._fatal = TrackerDeliveryError(tracker_name, error)
        self._fatal.__cause__ = error

    def _earlier_start_time(self) -> float | None:
        """When this run_id first started, if an earlier session wrote its run log.

        A resumed run keeps its first start time, as the trackers themselves continue the run.
        """
        path = self.run_log_path
        try:
            document = read_run_log_header(path).header if path.is_file() else {}
        except (OSError, ValueError):
            return None  # unreadable: this session's run log replaces it
        return start_time_of(document)

    def _write_run_log(self, *, closing: bool) -> None:
        """Fold this session into the run log, under its lock, as other writers may share it.

        A run log that cannot be written (a full disk, a read-only store) must not break the
        user's code: it is warned about, and the values stay in the spool.

        Closing streams every value of the rank's spool files from the index, which the
        background pass has kept up to date: only what is new since is indexed here.
        """
        document = self.run_log_document()
        fold = self._closed_into if closing else self._opened_into
        try:
            if closing:
                index = self._live_index()
                index.add(self._rank_files(), own=self._spool.path)
                document |= index.param_keys_field() | {
                    VALUE_COUNT: index.value_count(),
                    METRICS: index.write_user_defined_metrics,
                }
            update_run_log(self.run_log_path, lambda current: fold(current, document))
        except OSError as error:
            self._warn_run_log_unwritten(error)
            return
        self._counts_written.remember(document["experiment_trackers"])

    def _warn_run_log_unwritten(self, error: OSError) -> None:
        """Once a run: the run log could not be written; say truthfully what is kept where."""
        if self._run_log_warned:
            return
        self._run_log_warned = True
        never = self._spool.held_values + self._spool.lost_values
        missing = f" ({never} values never did: see the warning about the spool)" if never else ""
        warn_in_background(
            f"could not write the run log of run {self.run_id!r} in {self.run_log_path.parent} "
            f"({error.strerror or error}); every value that reached the run's spool "
            f"{self._store.spool_dir(self.run_id)} stays there{missing}, and once the folder can "
            f"be written again `trackhook sync {self.run_id}` delivers what a tracker has not "
            "received"
        )

    def _opened_into(self, current: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
        """The run log once this session opens: an earlier one's values and start are kept (the
        values copied as the file holds them, never loaded)."""
        if not current:
            return {**mine, VALUE_COUNT: 0, METRICS: {}}
        opened = self._folded_into(current, mine)
        opened[formats.RESUMED_AT] = [*(current.get(formats.RESUMED_AT) or []), _iso(time.time())]
        return opened

    def _closed_into(self, current: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
        """The run log once this session closes.

        Another owner of the run_id that opened after this one and still runs decides the status:
        this session adds its values and counts, and the run stays ``RUNNING`` until that one
        closes (or ``trackhook sync`` finds it dead).
        """
        if not current:
            return mine
        closed = self._folded_into(current, mine)
        if _another_session_is_open(current, mine[formats.OWNER]):
            for key in (formats.STATUS, formats.END_TIME, formats.OWNER):
                closed[key] = current.get(key)
        return closed

    def _folded_into(self, current: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
        """This session's run log ``mine`` in place of ``current``, keeping what is the run's.

        The run's first start, its resumptions and the trackers of other sessions stay; the
        delivery counts of this session are added to those already recorded.
        """
        folded = {key: value for key, value in current.items() if key != formats.CLOSED_BY}
        folded.update(mine)
        folded[formats.START_TIME] = current.get(formats.START_TIME) or mine[formats.START_TIME]
        folded[formats.TRACKERS] = self._counts_written.merge(
            current.get(formats.TRACKERS), mine[formats.TRACKERS]
        )
        folded[formats.NOT_LOADED] = merge_not_loaded(
            current.get(formats.NOT_LOADED), mine[formats.NOT_LOADED], self.trackers
        )
        return folded

    def run_log_document(self) -> dict[str, Any]:
        """This session's run log without its values, as if it were the run's only one."""
        return {
            formats.FORMAT: formats.RUN_LOG_FORMAT,
            formats.RUN_ID: self.run_id,
            formats.TAG: self.tag,
            formats.STATUS: self.status,
            formats.START_TIME: _iso(self.started_at),
            formats.END_TIME: _iso(self.ended_at) if self.ended_at else None,
            formats.OWNER: {
                formats.OWNER_HOST: socket.gethostname(),
                formats.OWNER_PID: os.getpid(),
            },
            formats.RANK: self.rank,
            formats.CONFIG_SOURCE: self._loaded.source,
            formats.TRACKERS: [worker.run_log_entry() for worker in self._workers],
            formats.NOT_LOADED: [tracker.as_dict() for tracker in self._not_loaded],
            **self._spool_trouble(),
            **self._files_held(),
        }

    def _files_held(self) -> dict[str, Any]:
        """``{"files_held": ...}`` when the run holds files: how many, and their bytes."""
        usage = held_usage(self._store.root, self.run_id)
        return {formats.FILES_HELD: usage} if usage is not None else {}

    def _spool_trouble(self) -> dict[str, Any]:
        """``{"spool": ...}`` when the disk refused values: how many are held, how many lost."""
        entry = self._spool.run_log_entry()
        return {formats.SPOOL_TROUBLE: entry} if entry is not None else {}


def _another_session_is_open(current: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether the run log names another owner, still running, as the run's latest session."""
    latest = current.get(formats.OWNER)
    return (
        current.get(formats.STATUS) == "RUNNING"
        and isinstance(latest, dict)
        and latest != owner
        and not owner_is_gone(latest)
    )


def _without_files(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without its files and images (and without the dicts left empty by that)."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if type(value) is dict:
            value = _without_files(value)
            if not value:
                continue
        if not isinstance(value, TrackedContent):
            kept[key] = value
    return kept


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


_INDEX_BEHIND_BYTES = 16 << 20
"""Spool bytes (about 800,000 values of one a call) indexed at once in the background."""

_KEPT_FOLDER = "kept"
"""Beside ``spool``: the values of ranks that send nothing, which no tracker is fed from."""


def owner_token() -> str:
    """Names this process as the owner of a run, in ``TRACKHOOK_RUN_OWNER``."""
    return f"{socket.gethostname()}:{os.getpid()}"
