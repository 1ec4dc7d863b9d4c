"""``trackhook sync``: deliver what trackers have not received yet, and close abandoned runs.

Every value is in a run's spool before any tracker sees it, and each tracker's position in each
spool file is recorded after every accepted batch; syncing therefore sends each value at most once,
however often it runs. A run whose owning process died without closing it (SIGKILL, OOM, power
loss: its run log still says ``RUNNING`` and its process is gone) is closed in its trackers as
``FAIL`` and its run log is rebuilt from the spool.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trackhook.config import ConfigSource, LoadedConfig, TrackerSettings, load_config
from trackhook.delivery import TrackerWorker, wait_for_workers
from trackhook.errors import ConfigError
from trackhook.records import RunInfo, Status
from trackhook.redaction import REDACTED
from trackhook.runlog import read_run_log, record_from_spools, start_time_of, write_run_log
from trackhook.store import RunStore, spool_rank
from trackhook.trackers import build_trackers

__all__ = ["SYNC_TIMEOUT", "SyncResult", "sync_run", "sync_runs"]

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


def sync_runs(
    run_ids: list[str] | None = None,
    config: ConfigSource = None,
    *,
    timeout: float | None = None,
) -> list[SyncResult]:
    """Sync the given runs, or every run in the run log store."""
    loaded = load_config(config)
    store = RunStore(loaded.config.run_log_store)
    return [
        sync_run(run_id, loaded, store, timeout=timeout) for run_id in run_ids or store.run_ids()
    ]


def sync_run(
    run_id: str, loaded: LoadedConfig, store: RunStore, *, timeout: float | None = None
) -> SyncResult:
    """Deliver one run's undelivered values to the configured trackers."""
    log_path = store.run_log_path(run_id)
    document: dict[str, Any] = read_run_log(log_path) if log_path.is_file() else {}
    status = str(document.get("status", "RUNNING"))
    abandoned = status == "RUNNING" and _owner_is_gone(document.get("owner"))
    final: Status | None = "FAIL" if abandoned else _final_status(status)
    settings = _tracker_settings(loaded, document)
    run = RunInfo(
        run_id=run_id, tag=str(document.get("tag", "")), started_at=start_time_of(document) or 0.0
    )
    built = build_trackers(loaded, settings, quiet=True)
    workers = [
        TrackerWorker(
            tracker, run, store, loaded.config.delivery, own_spool=None, open_eagerly=False
        )
        for tracker in built.loaded
    ]
    wait = max(loaded.config.delivery.flush_timeout, SYNC_TIMEOUT) if timeout is None else timeout
    for worker in workers:
        worker.finish(final, wait)
        worker.start()
    wait_for_workers(workers, wait)
    result = SyncResult(run_id, "FAIL" if abandoned else status, abandoned=abandoned)
    result.not_loaded = {tracker.name: tracker.error for tracker in built.not_loaded}
    for worker in workers:
        result.delivered[worker.tracker.name] = worker.report.delivered
        result.undelivered[worker.tracker.name] = worker.report.undelivered
        if final is not None and not worker.closed_in_tracker():
            result.not_closed[worker.tracker.name] = worker.report.last_error
    if final is not None and workers and not result.not_closed and not result.not_loaded:
        result.closed_as = final
    if document:
        _update_run_log(log_path, document, workers, store, abandoned)
    return result


def _final_status(status: str) -> Status | None:
    if status == "SUCCESS":
        return "SUCCESS"
    if status == "FAIL":
        return "FAIL"
    return None


def _tracker_settings(loaded: LoadedConfig, document: dict[str, Any]) -> list[TrackerSettings]:
    """The configured trackers; without any configuration, the ones the run log recorded."""
    # Trackers that did not load when the run ran are the ones that most need a sync.
    recorded = [
        *(document.get("experiment_trackers") or []),
        *(document.get("trackers_not_loaded") or []),
    ]
    if loaded.source.startswith("the default") and recorded:
        for item in recorded:
            if REDACTED in json.dumps(item.get("config") or {}):
                raise ConfigError(
                    f"run {document.get('run_id')!r} recorded tracker {item.get('name')!r} with "
                    "its secrets removed, so it cannot be rebuilt from the run log; pass the "
                    "configuration: trackhook sync --config FILE (or set TRACKHOOK_CONFIG)"
                )
        return [
            TrackerSettings(
                type=item["type"],
                name=item.get("name"),
                config=item.get("config") or {},
                on_error="warn",
            )
            for item in recorded
        ]
    return [item.model_copy(update={"on_error": "warn"}) for item in loaded.config.trackers]


def _owner_is_gone(owner: Any) -> bool:
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _update_run_log(
    path: Path,
    document: dict[str, Any],
    workers: list[TrackerWorker],
    store: RunStore,
    abandoned: bool,
) -> None:
    listed = {str(item.get("name")): item for item in document.get("experiment_trackers") or []}
    for worker in workers:  # a tracker new to the run, or one that had not loaded, is added
        earlier = listed.get(worker.tracker.name, {})
        entry = worker.run_log_entry(earlier.get("delivery"))
        for kept in ("on_error", "config"):  # as the run had them, not as sync overrides them
            if kept in earlier:
                entry[kept] = earlier[kept]
        if earlier.get("run") and not worker.facts:
            entry["run"] = earlier["run"]
        listed[worker.tracker.name] = entry
    document["experiment_trackers"] = list(listed.values())
    document["trackers_not_loaded"] = [
        item for item in document.get("trackers_not_loaded") or [] if item.get("name") not in listed
    ]
    if abandoned:
        document["status"] = "FAIL"
        document["end_time"] = datetime.now().astimezone().isoformat()
        document["closed_by"] = "trackhook sync (the owning process had died)"
        rank = document.get("rank")
        spools = [p for p in store.spool_files(str(document["run_id"])) if spool_rank(p) == rank]
        document["user_defined_metrics"] = record_from_spools(spools).as_user_defined_metrics()
    write_run_log(path, document)
