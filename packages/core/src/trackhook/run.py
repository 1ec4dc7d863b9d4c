"""A run: the values tracked in it, its run log, and the delivery threads that feed its trackers.

The data path, in order: ``Run.track`` checks and normalises the values (``values``), records them
in the run's ``MetricsRecord`` (the run log's content), appends one line to this process's spool
(``store.SpoolWriter``) and returns. Each tracker's ``TrackerWorker`` (``delivery``) reads the spool
in the background, makes the values fit the tracker and calls its hooks.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.delivery import TrackerWorker, wait_for_workers
from trackhook.errors import (
    TrackerDeliveryError,
    TrackhookError,
    warn_in_background,
)
from trackhook.ranks import current_rank
from trackhook.records import RunInfo, Status
from trackhook.runid import check_run_id, check_tag
from trackhook.runlog import (
    CountsWritten,
    MetricsRecord,
    merge_not_loaded,
    owner_is_gone,
    read_run_log,
    record_from_spools,
    start_time_of,
    update_run_log,
)
from trackhook.store import RunStore, SpoolWriter, spool_rank
from trackhook.values import check_step, normalise_values

if TYPE_CHECKING:
    from trackhook.config import LoadedConfig

__all__ = ["Run"]


class Run:
    """An open or finished run.

    ``user_defined_metrics`` is the run log's record of every value, in runnable's shape.
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
        self._store = RunStore(loaded.config.run_log_store)
        if owner:
            self.started_at = self._earlier_start_time() or self.started_at
        self._counts_written = CountsWritten()
        self._record = MetricsRecord()
        self._fatal: TrackerDeliveryError | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self.tracked_environment: dict[str, str] = {}
        """``TRACKHOOK_TRACK_*`` variables already tracked, by name: not tracked again at close."""
        self.info = RunInfo(run_id=run_id, tag=tag, started_at=self.started_at)
        from trackhook.trackers import build_trackers  # imports pydantic: only once a run opens

        sends = self.rank in (None, 0) or loaded.config.ranks == "all"
        # A process that joins another's run only spools; the owner delivers its file.
        built = build_trackers(loaded) if sends and owner else None
        trackers = built.loaded if built is not None else []
        self._not_loaded = built.not_loaded if built is not None else []
        self._spool = (
            SpoolWriter(self._store.new_spool_path(run_id, self.rank), write_through=not owner)
            if sends
            else None
        )
        self._workers = [
            TrackerWorker(
                tracker,
                self.info,
                self._store,
                loaded.config.delivery,
                own_spool=self._spool,
                on_fatal=self._on_fatal,
                on_opened=on_tracker_opened,
            )
            for tracker in trackers
        ]
        if owner:
            self._write_run_log(closing=False)
        self._stop_flushing = threading.Event()
        if self._spool is not None and owner:
            threading.Thread(
                target=self._flush_spool_periodically, name="trackhook-spool", daemon=True
            ).start()
        for worker in self._workers:
            worker.start()

    def _flush_spool_periodically(self) -> None:
        """Hand the spool to the OS every ``interval``, even while every tracker hangs in a hook.

        This, not the delivery threads, is what bounds what a killed process can lose.
        """
        assert self._spool is not None
        interval = self._loaded.config.delivery.interval
        while not self._stop_flushing.wait(interval):
            self._spool.flush()

    # -- the public face ---------------------------------------------------------------------------

    @property
    def user_defined_metrics(self) -> dict[str, Any]:
        """Every value: ``key -> value`` at step 0 only, else ``key -> {"<step>": value}``."""
        return self._record.as_user_defined_metrics()

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

    def track(self, step: object, values: Mapping[str, object]) -> None:
        """Record ``values`` at ``step`` and hand them to the delivery threads, without waiting."""
        if self._fatal is not None:
            raise self._fatal
        checked_step = check_step(step)
        clean = normalise_values(values)
        if not clean:
            return
        # One lock for the record and the spool: both see the same order, and none of it can
        # happen after close() has begun.
        with self._close_lock:
            if self._closed:
                raise TrackhookError(
                    f"run {self.run_id!r} is closed; open a new one with trackhook.start_run()"
                )
            timestamp = time.time()
            self._record.update(checked_step, clean)
            if self._spool is not None:
                self._spool.append(timestamp, checked_step, clean)

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
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        timeout = self._loaded.config.delivery.flush_timeout
        for worker in self._workers:
            worker.finish(status, timeout, at_exit=at_exit)
        wait_for_workers(self._workers, timeout)
        self._stop_flushing.set()
        if self._spool is not None:
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
            self._merge_other_processes()
            self._write_run_log(closing=True)
        if self._fatal is not None:
            raise self._fatal

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the parent's file buffer and threads without touching them."""
        self._closed = True
        if self._spool is not None:
            self._spool.abandon()

    def flush(self) -> None:
        if self._spool is not None:
            self._spool.flush()

    def _on_fatal(self, tracker_name: str, error: BaseException) -> None:
        self._fatal = TrackerDeliveryError(tracker_name, error)
        self._fatal.__cause__ = error

    def _merge_other_processes(self) -> None:
        """Fold in what other processes tracked into this run_id, in the order it was tracked."""
        if self._spool is None:
            return  # this rank sends nothing, so nothing of another process belongs to its log
        spools = [
            path
            for path in self._store.spool_files(self.run_id)
            if spool_rank(path) == self.rank  # other ranks keep run logs of their own
        ]
        if any(path != self._spool.path for path in spools):
            self._record = record_from_spools(spools)

    def _earlier_start_time(self) -> float | None:
        """When this run_id first started, if an earlier session wrote its run log.

        A resumed run keeps its first start time, as the trackers themselves continue the run.
        """
        path = self.run_log_path
        try:
            document = read_run_log(path) if path.is_file() else {}
        except (OSError, ValueError):
            return None  # unreadable: this session's run log replaces it
        return start_time_of(document) if isinstance(document, dict) else None

    def _write_run_log(self, *, closing: bool) -> None:
        """Fold this session into the run log, under its lock, as other writers may share it.

        A run log that cannot be written (a full disk, a read-only store) must not break the
        user's code: it is warned about, and the values stay in the spool.
        """
        document = self.run_log_document()
        fold = self._closed_into if closing else self._opened_into
        try:
            update_run_log(self.run_log_path, lambda current: fold(current, document))
        except OSError as error:
            warn_in_background(
                f"could not write the run log of run {self.run_id!r} in {self.run_log_path.parent} "
                f"({error.strerror or error}); every value stays in the run's spool "
                f"{self._store.spool_dir(self.run_id)}, and once the folder can be written again "
                f"`trackhook sync {self.run_id}` delivers what a tracker has not received"
            )
            return
        self._counts_written.remember(document["experiment_trackers"])

    def _opened_into(self, current: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
        """The run log once this session opens: an earlier one's values and start are kept."""
        if not current:
            return mine
        opened = self._folded_into(current, mine)
        opened["resumed_at"] = [*(current.get("resumed_at") or []), _iso(time.time())]
        opened["user_defined_metrics"] = current.get("user_defined_metrics") or {}
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
        if _another_session_is_open(current, mine["owner"]):
            for key in ("status", "end_time", "owner"):
                closed[key] = current.get(key)
        return closed

    def _folded_into(self, current: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
        """This session's run log ``mine`` in place of ``current``, keeping what is the run's.

        The run's first start, its resumptions and the trackers of other sessions stay; the
        delivery counts of this session are added to those already recorded.
        """
        folded = {key: value for key, value in current.items() if key != "closed_by"}
        folded.update(mine)
        folded["start_time"] = current.get("start_time") or mine["start_time"]
        folded["experiment_trackers"] = self._counts_written.merge(
            current.get("experiment_trackers"), mine["experiment_trackers"]
        )
        folded["trackers_not_loaded"] = merge_not_loaded(
            current.get("trackers_not_loaded"), mine["trackers_not_loaded"], self.trackers
        )
        return folded

    def run_log_document(self) -> dict[str, Any]:
        """This session's run log, as if it were the run's only one."""
        return {
            "run_id": self.run_id,
            "tag": self.tag,
            "status": self.status,
            "start_time": _iso(self.started_at),
            "end_time": _iso(self.ended_at) if self.ended_at else None,
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
            "rank": self.rank,
            "config_source": self._loaded.source,
            "experiment_trackers": [worker.run_log_entry() for worker in self._workers],
            "trackers_not_loaded": [tracker.as_dict() for tracker in self._not_loaded],
            **self._spool_trouble(),
            "user_defined_metrics": self.user_defined_metrics,
        }

    def _spool_trouble(self) -> dict[str, Any]:
        """``{"spool": ...}`` when the disk refused values: how many are held, how many lost."""
        entry = self._spool.run_log_entry() if self._spool is not None else None
        return {"spool": entry} if entry is not None else {}


def _another_session_is_open(current: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether the run log names another owner, still running, as the run's latest session."""
    latest = current.get("owner")
    return (
        current.get("status") == "RUNNING"
        and isinstance(latest, dict)
        and latest != owner
        and not owner_is_gone(latest)
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


RUN_ID_VARIABLE = "TRACKHOOK_RUN_ID"
TAG_VARIABLE = "TRACKHOOK_TAG"
OWNER_VARIABLE = "TRACKHOOK_RUN_OWNER"
STORE_VARIABLE = "TRACKHOOK_RUN_LOG_STORE"
CONFIG_VARIABLE = "TRACKHOOK_CONFIG"
CHILD_VARIABLES = (RUN_ID_VARIABLE, TAG_VARIABLE, OWNER_VARIABLE, STORE_VARIABLE, CONFIG_VARIABLE)
"""Every variable of ``Run.child_environment``."""


def owner_token() -> str:
    """Names this process as the owner of a run, in ``TRACKHOOK_RUN_OWNER``."""
    return f"{socket.gethostname()}:{os.getpid()}"
