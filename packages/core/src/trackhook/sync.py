"""``trackhook sync``: deliver what trackers have not received yet, and close abandoned runs.

Every value is in a run's spool before any tracker sees it, and each tracker's position in each
spool file is recorded after every accepted batch; syncing therefore sends each value at most once,
however often it runs. A run whose owning process died without closing it (SIGKILL, OOM, power
loss: its run log still says ``RUNNING`` and its process is gone) is closed in its trackers as
``FAIL`` and its run log is rebuilt from the spool.

Each tracker is delivered by the thread a run uses (``worker.TrackerWorker``), over a delivery
without a spool of its own: a hook that never returns holds only that thread, which the sync
abandons when its time is up, so that ``--timeout`` stays a hard limit.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from trackhook import formats
from trackhook.config import ConfigSource, LoadedConfig, TrackerSettings, load_config
from trackhook.delivery import TrackerDelivery
from trackhook.errors import ConfigError, UnknownRunError
from trackhook.formats import FormatTooNewError
from trackhook.index import ValueIndex, index_folder, remove_abandoned_indexes
from trackhook.records import RunInfo, Status
from trackhook.redaction import REDACTED
from trackhook.runlog import (
    METRICS,
    VALUE_COUNT,
    CountsWritten,
    exclusive_lock,
    merge_not_loaded,
    owner_is_gone,
    start_time_of,
    update_run_log,
    with_run_log,
)
from trackhook.store import RunStore, spool_rank
from trackhook.trackers import build_trackers
from trackhook.variables import CONFIG_VARIABLE
from trackhook.worker import TrackerWorker, wait_for_workers

__all__ = ["SYNC_TIMEOUT", "SyncPlan", "SyncResult", "plan_sync", "sync_run", "sync_runs"]

SYNC_TIMEOUT = 60.0
"""Seconds each tracker gets per run, at least, unless ``--timeout`` says otherwise.

Longer than a run's ``flush_timeout``: nobody's training waits for a sync, and opening a run can
take seconds (importing the tracker's library, creating a store).
"""


@dataclass
class SyncResult:
    """What one ``sync`` did for one run."""

    run_id: str
    status: str
    """The run's status in its run log once this sync is done."""
    delivered: dict[str, int] = field(default_factory=dict)
    undelivered: dict[str, int] = field(default_factory=dict)
    closed_as: Status | None = None
    """The status the run was closed with in every tracker by this sync, if it was."""
    not_closed: dict[str, str | None] = field(default_factory=dict)
    """Trackers in which the run should have been closed but is not yet, with their last error
    (``None``: they ran out of time)."""
    not_loaded: dict[str, str] = field(default_factory=dict)
    """Trackers whose plugin could not be loaded, with the reason; their values wait."""
    abandoned: bool = False
    another_sync: bool = False
    """Another ``trackhook sync`` of the run went on for all of this one's time: this one did
    nothing."""
    refused: str | None = None
    """Why this sync did nothing for the run: a newer trackhook wrote its run log or a spool
    file (``FormatTooNewError``), and the message says which trackhook to install."""


def sync_runs(
    run_ids: list[str] | None = None,
    config: ConfigSource = None,
    *,
    timeout: float | None = None,
) -> list[SyncResult]:
    """Sync the given runs, or every run in the run log store; ``UnknownRunError`` names the
    given run_ids the store does not hold, before any run is synced."""
    return list(plan_sync(run_ids, config).results(timeout=timeout))


@dataclass(frozen=True)
class SyncPlan:
    """The runs one ``sync`` is about to deliver, with the configuration and store it reads:
    ``trackhook sync`` shows its progress run by run through ``results``."""

    loaded: LoadedConfig
    store: RunStore
    run_ids: list[str]

    def results(self, *, timeout: float | None = None) -> Iterator[SyncResult]:
        """Sync each run in turn, giving its result as soon as it is done."""
        for run_id in self.run_ids:
            yield sync_run(run_id, self.loaded, self.store, timeout=timeout)


def plan_sync(run_ids: list[str] | None = None, config: ConfigSource = None) -> SyncPlan:
    """Which runs to sync: those given, or every run in the run log store of ``config``."""
    loaded = load_config(config)
    store = RunStore(loaded.config.run_log_store)
    known = store.run_ids()
    unknown = [run_id for run_id in run_ids or [] if run_id not in known]
    if unknown:
        raise UnknownRunError(unknown, store.root)
    return SyncPlan(loaded, store, list(run_ids or known))


def sync_run(
    run_id: str, loaded: LoadedConfig, store: RunStore, *, timeout: float | None = None
) -> SyncResult:
    """Deliver one run's undelivered values to the configured trackers.

    Syncs of one run take turns: a second one waits (within its timeout) for the first to finish,
    then finds only what is left, rather than both finding the other's spool files busy and
    neither closing the run.

    ``timeout`` given (``--timeout``) is a hard limit: a tracker still opening or still accepting
    values gets no ``patience`` beyond it.

    A run whose files a newer trackhook wrote is left as it is, and ``refused`` says why: the
    other runs of a store are still synced.
    """
    if timeout is not None:
        delivery = loaded.config.delivery.model_copy(update={"patience": 0.0})
        loaded = replace(loaded, config=loaded.config.model_copy(update={"delivery": delivery}))
    wait = max(loaded.config.delivery.flush_timeout, SYNC_TIMEOUT) if timeout is None else timeout
    deadline = time.monotonic() + wait
    lock = store.run_log_path(run_id).with_name(f".{run_id}.sync.lock")
    try:
        with exclusive_lock(lock, wait) as ours:
            if not ours:
                status = with_run_log(
                    store.run_log_path(run_id), lambda now: now.get(formats.STATUS)
                )
                return SyncResult(run_id, str(status or "RUNNING"), another_sync=True)
            return _sync(run_id, loaded, store, deadline)
    except FormatTooNewError as error:
        return SyncResult(run_id, "UNKNOWN", refused=str(error))


@dataclass(frozen=True)
class _Plan:
    """What a sync does with a run, decided from its run log under the run log's lock."""

    document: dict[str, Any]
    final: Status | None
    """The status to close the run with in its trackers; ``None`` while its owner runs."""
    abandoned: bool
    """Its owner died without closing it: the run is closed as ``FAIL``."""


def _plan(document: dict[str, Any]) -> _Plan:
    # Under the lock: an owner that is gone now cannot have closed the run since it was read.
    status = str(document.get(formats.STATUS, "RUNNING"))
    abandoned = status == "RUNNING" and owner_is_gone(document.get(formats.OWNER))
    return _Plan(document, "FAIL" if abandoned else _final_status(status), abandoned)


def _sync(run_id: str, loaded: LoadedConfig, store: RunStore, deadline: float) -> SyncResult:
    log_path = store.run_log_path(run_id)
    plan = with_run_log(log_path, _plan)
    store.check_formats(run_id)  # refused before any tracker is contacted
    document = plan.document
    settings = _tracker_settings(loaded, document, store)
    run = RunInfo(
        run_id=run_id,
        tag=str(document.get(formats.TAG, "")),
        started_at=start_time_of(document) or 0.0,
    )
    built = build_trackers(loaded, settings, quiet=True)
    wait = max(deadline - time.monotonic(), 0.0)  # loading the plugins counts within the timeout
    workers = [
        TrackerWorker(TrackerDelivery(tracker, run, store, loaded.config.delivery, own_spool=None))
        for tracker in built.loaded
    ]
    for worker in workers:
        worker.finish(plan.final, wait)
        worker.start()
    wait_for_workers(workers, wait)
    status = str(document.get(formats.STATUS, "RUNNING"))
    result = SyncResult(run_id, "FAIL" if plan.abandoned else status, abandoned=plan.abandoned)
    result.not_loaded = {tracker.name: tracker.error for tracker in built.not_loaded}
    for worker in workers:
        result.delivered[worker.tracker.name] = worker.report.delivered
        result.undelivered[worker.tracker.name] = worker.report.undelivered
        if plan.final is not None and not worker.closed_in_tracker():
            result.not_closed[worker.tracker.name] = worker.report.last_error
    if plan.final is not None and workers and not result.not_closed and not result.not_loaded:
        result.closed_as = plan.final
    entries = [worker.run_log_entry() for worker in workers]
    # Built before the lock is taken, so that other writers of the run log wait only for the write.
    index = _spool_index(store, run_id, document.get(formats.RANK)) if plan.abandoned else None
    try:
        written = update_run_log(
            log_path, lambda current: _synced_into(current, entries, plan, index)
        )
    finally:
        if index is not None:
            index.close()
    if written is not None:
        result.status = str(written.get(formats.STATUS, result.status))
    return result


def _final_status(status: str) -> Status | None:
    if status == "SUCCESS":
        return "SUCCESS"
    if status == "FAIL":
        return "FAIL"
    return None


def _tracker_settings(
    loaded: LoadedConfig, document: dict[str, Any], store: RunStore
) -> list[TrackerSettings]:
    """The configured trackers; without any configuration, the ones the run log recorded."""
    # Trackers that did not load when the run ran are the ones that most need a sync.
    recorded = [
        *(document.get(formats.TRACKERS) or []),
        *(document.get(formats.NOT_LOADED) or []),
    ]
    if not loaded.found and recorded:
        _refuse_an_untrusted_store(document, store, recorded)
        for item in recorded:
            if REDACTED in json.dumps(item.get(formats.TRACKER_CONFIG) or {}):
                raise ConfigError(
                    f"run {document.get('run_id')!r} recorded tracker {item.get('name')!r} with "
                    "its secrets removed, so it cannot be rebuilt from the run log; pass the "
                    f"configuration: trackhook sync --config FILE (or set {CONFIG_VARIABLE})"
                )
        unique: dict[str, dict[str, Any]] = {}
        for item in recorded:  # loaded in one session, not in another: listed twice
            unique.setdefault(str(item.get(formats.TRACKER_NAME)), item)
        return [
            TrackerSettings(
                type=item[formats.TRACKER_TYPE],
                name=item.get(formats.TRACKER_NAME),
                config=item.get(formats.TRACKER_CONFIG) or {},
                on_error="warn",
            )
            for item in unique.values()
        ]
    return [item.model_copy(update={"on_error": "warn"}) for item in loaded.config.trackers]


def _refuse_an_untrusted_store(
    document: dict[str, Any], store: RunStore, recorded: list[dict[str, Any]]
) -> None:
    """Refuse to contact trackers named only by a run log that someone else may have written.

    A tracker is contacted with the user's credentials (``MLFLOW_TRACKING_TOKEN`` goes to any
    ``tracking_uri``): a run log planted in a store that others can write to would otherwise
    send them to a server of its choosing.
    """
    if all(item.get(formats.TRACKER_TYPE) == "do-nothing" for item in recorded):
        return  # contacts nothing
    run_id = str(document.get(formats.RUN_ID))
    reason = _why_untrusted(store.root.stat(), store.root) or _why_untrusted(
        store.run_log_path(run_id).lstat(), store.run_log_path(run_id)
    )
    if reason is None:
        return
    names = ", ".join(repr(str(item.get(formats.TRACKER_NAME))) for item in recorded)
    raise ConfigError(
        f"{reason}, so the run log of run {run_id!r} may not be yours: trackhook sync does not "
        f"contact the trackers it names ({names}) with your credentials unless a configuration "
        "names them too; pass the configuration: trackhook sync --config FILE (or set "
        f"{CONFIG_VARIABLE}), or make the store writable by you alone (chmod go-w)"
    )


def _why_untrusted(status: os.stat_result, path: Path) -> str | None:
    if stat.S_ISLNK(status.st_mode):
        return f"{path} is a symbolic link"
    if status.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {status.st_uid})"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} can be written by other users (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def _synced_into(
    current: dict[str, Any],
    entries: list[dict[str, Any]],
    plan: _Plan,
    index: ValueIndex | None,
) -> dict[str, Any] | None:
    """The run log as it is now, with what this sync delivered added; ``None``: there is none."""
    if not current:
        return None
    recorded = {
        str(item.get(formats.TRACKER_NAME)): item for item in current.get(formats.TRACKERS) or []
    }
    as_the_run_had_them = [
        {**entry, **_run_settings(recorded.get(str(entry[formats.TRACKER_NAME]), {}))}
        for entry in entries
    ]
    document = dict(current)
    # A sync writes once: all its counts are new to the run log.
    document[formats.TRACKERS] = CountsWritten().merge(
        current.get(formats.TRACKERS), as_the_run_had_them
    )
    document[formats.NOT_LOADED] = merge_not_loaded(
        current.get(formats.NOT_LOADED), [], [str(entry[formats.TRACKER_NAME]) for entry in entries]
    )
    still_abandoned = current.get(formats.STATUS) == "RUNNING" and current.get(formats.OWNER) == (
        plan.document.get(formats.OWNER)
    )
    if index is not None and still_abandoned:
        _close_as_failed(document, index)
    return document


def _run_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A tracker's settings as the run had them, not as this sync overrides them."""
    return {
        key: recorded[key]
        for key in (formats.TRACKER_ON_ERROR, formats.TRACKER_CONFIG)
        if key in recorded
    }


def _close_as_failed(document: dict[str, Any], index: ValueIndex) -> None:
    """Close the run of a dead owner as ``FAIL``, with every value its spool holds (``index``)."""
    document[formats.STATUS] = "FAIL"
    document[formats.END_TIME] = datetime.now().astimezone().isoformat()
    document[formats.CLOSED_BY] = "trackhook sync (the owning process had died)"
    document |= index.param_keys_field()
    document[VALUE_COUNT] = index.value_count()
    document[METRICS] = index.write_user_defined_metrics


def _spool_index(store: RunStore, run_id: str, rank: object) -> ValueIndex:
    """An index of every value the spool of ``run_id`` holds for ``rank``'s run log, built in
    bounded memory (the caller closes it)."""
    folder = index_folder(store.root, run_id)
    remove_abandoned_indexes(folder)  # the dead owner's, among others
    index = ValueIndex(folder)
    try:
        index.add(path for path in store.spool_files(run_id) if spool_rank(path) == rank)
    except BaseException:
        index.close()
        raise
    return index
