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
    InvalidValueError,
    TrackerDeliveryError,
    TrackhookError,
    warn_in_background,
)
from trackhook.ranks import current_rank
from trackhook.records import RunInfo, Status
from trackhook.runlog import (
    MetricsRecord,
    read_run_log,
    record_from_spools,
    start_time_of,
    write_run_log,
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
        if "/" in run_id or "\\" in run_id or run_id in (".", ".."):
            raise InvalidValueError(
                "run_id",
                f"{run_id!r} names a file of the run log store: drop '/' and '\\' "
                "('.' and '..' are not run ids either)",
            )
        self.run_id = run_id
        self.tag = tag
        self.status = "RUNNING"
        self.owner = owner
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.rank = current_rank()
        self._loaded = loaded
        self._store = RunStore(loaded.config.run_log_store)
        earlier = self._earlier_session() if owner else {}
        self.started_at = start_time_of(earlier) or self.started_at
        self._resumed_at = [*earlier.get("resumed_at", []), _iso(time.time())] if earlier else []
        self._earlier_delivery = {
            str(item.get("name")): item.get("delivery") or {}
            for item in earlier.get("experiment_trackers") or []
        }
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
            self._write_run_log()
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
            self._write_run_log()
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

    def _earlier_session(self) -> dict[str, Any]:
        """The run log of this run_id from an earlier session that this one continues, if any.

        A resumed run keeps its first start time and adds up its delivery counts, as the trackers
        themselves continue the same run.
        """
        path = self.run_log_path
        try:
            document = read_run_log(path) if path.is_file() else {}
        except (OSError, ValueError):
            return {}  # unreadable: this session's run log replaces it
        return document if isinstance(document, dict) else {}

    def _write_run_log(self) -> None:
        write_run_log(self.run_log_path, self.run_log_document())

    def run_log_document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tag": self.tag,
            "status": self.status,
            "start_time": _iso(self.started_at),
            "end_time": _iso(self.ended_at) if self.ended_at else None,
            **({"resumed_at": self._resumed_at} if self._resumed_at else {}),
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
            "rank": self.rank,
            "config_source": self._loaded.source,
            "experiment_trackers": [
                worker.run_log_entry(self._earlier_delivery.get(worker.tracker.name))
                for worker in self._workers
            ],
            "trackers_not_loaded": [tracker.as_dict() for tracker in self._not_loaded],
            "user_defined_metrics": self.user_defined_metrics,
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()
