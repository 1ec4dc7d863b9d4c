"""The MLflow run of a trackhook run_id: found and continued, or created, in few round trips.

A run_id names one MLflow run: the run carries the tag ``trackhook.run_id``, and opening a run_id
searches its experiment for that tag, continues the run found (the oldest, should two processes
have raced to create it) or creates one. That rule is what lets a run_id continue across
processes and in ``trackhook sync``, and nothing here weakens it: every open searches, unless the
experiment was created by this very open and so holds no run.

Against a tracking server each step is a round trip, and at the start of a short run they are most
of its cost beyond the values themselves. So:

- the experiment's id is remembered per tracking URI and name, for the life of the process, and
  the search starts with it while the experiment is looked up again at the same time: the id
  used to create a run is always MLflow's answer of the moment (an experiment deleted, or deleted
  for good and its name taken again, is noticed), but the look-up no longer delays the search;
- MLflow's context tags (user, source, git commit: local work, slow the first time in a process)
  are resolved while those requests are on the wire;
- a run found is set ``RUNNING`` in one request, and only when it is not; configured tags are sent
  only when the run does not hold them already.

This module imports MLflow, and so is imported only on the delivery side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking.context.registry import resolve_tags

from trackhook import RunInfo
from trackhook_mlflow._tracker import RUN_ID_TAG, MlflowTrackerError

__all__ = ["MlflowRun", "open_mlflow_run"]

_T = TypeVar("_T")
_RUNNING = RunStatus.to_string(RunStatus.RUNNING)
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
_DELETED = "deleted"

_experiment_ids: dict[tuple[str, str], str] = {}
"""Experiment ids by (tracking URI, experiment name), as MLflow last gave them in this process.

Only a head start for the search: a new look-up, made alongside, decides which experiment a run
goes to. A plain dict: one item's get and set are atomic, and two threads that both look up one
experiment store the same answer.
"""


@dataclass(frozen=True)
class MlflowRun:
    """The MLflow run a trackhook run delivers to, as found or created."""

    run_id: str
    experiment_id: str
    params: dict[str, str]
    """The params it holds already: MLflow refuses to change them."""


@dataclass(frozen=True)
class _Experiment:
    experiment_id: str
    created: bool
    """Created by this look-up: it holds no run yet."""


def open_mlflow_run(
    client: MlflowClient,
    run: RunInfo,
    experiment_name: str,
    tags: Mapping[str, str],
    *,
    reactivate: bool,
) -> MlflowRun:
    """Find the MLflow run of ``run.run_id`` in ``experiment_name`` and continue it, or create it.

    ``tags`` are set on the run either way. ``reactivate``: set a run found back to ``RUNNING``
    (not when the run is opened only to be closed, as ``trackhook sync`` does).
    """
    context_tags = _soon(resolve_tags, {**tags, RUN_ID_TAG: run.run_id})
    looked_up = _soon(_look_up_experiment, client, experiment_name)
    key = (client.tracking_uri, experiment_name)
    remembered = _experiment_ids.get(key)
    early = _search_ahead(client, remembered, run.run_id)
    experiment = looked_up.result()
    _experiment_ids[key] = experiment.experiment_id
    if experiment.created:
        found = None
    elif early is not None and remembered == experiment.experiment_id:
        found = early.found
    else:
        found = _search(client, experiment.experiment_id, run.run_id)
    if found is not None:
        return _continue(client, found, tags, reactivate=reactivate)
    return _create(client, run, experiment.experiment_id, context_tags)


def _soon(function: Callable[..., _T], *args: Any) -> Future[_T]:
    """``function(*args)``, computed on a thread of its own while the caller goes on.

    A daemon thread, not an executor's: an open may come while the interpreter exits (the core
    closes a run then), when executors take no more work. Where no thread may start any more, the
    work is done at once.
    """
    future: Future[_T] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # raised again where the result is asked for
            future.set_exception(error)

    try:
        threading.Thread(target=run, name="trackhook-mlflow-open", daemon=True).start()
    except RuntimeError:
        run()
    return future


@dataclass(frozen=True)
class _SearchedAhead:
    found: Run | None


def _search_ahead(
    client: MlflowClient, experiment_id: str | None, run_id: str
) -> _SearchedAhead | None:
    """The search in the experiment remembered, if any; None when there is none, or when the
    search failed (it is made again once the look-up has said which experiment it is)."""
    if experiment_id is None:
        return None
    try:
        return _SearchedAhead(_search(client, experiment_id, run_id))
    except MlflowException:
        return None


def _search(client: MlflowClient, experiment_id: str, run_id: str) -> Run | None:
    """The oldest active run of ``experiment_id`` tagged with ``run_id``, if any."""
    quoted = run_id.replace("\\", "\\\\").replace("'", "\\'")
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_ID_TAG}` = '{quoted}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return found[0] if found else None


def _look_up_experiment(client: MlflowClient, name: str) -> _Experiment:
    """The experiment ``name``, created if missing (another process may win the race)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return _Experiment(str(client.create_experiment(name)), created=True)
        except MlflowException as error:
            if error.error_code != _ALREADY_EXISTS:
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == _DELETED:
        raise MlflowTrackerError(
            f"the MLflow experiment {name!r} is deleted: restore it "
            "(`mlflow experiments restore --experiment-id <id>`), delete it for good "
            "(`mlflow gc`), or track with another tag"
        )
    return _Experiment(str(experiment.experiment_id), created=False)


def _continue(
    client: MlflowClient, found: Run, tags: Mapping[str, str], *, reactivate: bool
) -> MlflowRun:
    """Continue the run found: ``RUNNING`` again, with the configured tags."""
    mlflow_run_id = found.info.run_id
    if reactivate and found.info.status != _RUNNING:
        # One request with the end time the search returned; MlflowClient.update_run would read
        # the run again first. A run without an end time gets one now, replaced at its close.
        client.set_terminated(mlflow_run_id, _RUNNING, end_time=found.info.end_time)
    held = found.data.tags
    missing = [RunTag(key, value) for key, value in tags.items() if held.get(key) != value]
    if missing:
        client.log_batch(mlflow_run_id, tags=missing, synchronous=True)
    return MlflowRun(mlflow_run_id, found.info.experiment_id, dict(found.data.params))


def _create(
    client: MlflowClient,
    run: RunInfo,
    experiment_id: str,
    context_tags: Future[dict[str, str]],
) -> MlflowRun:
    """A new MLflow run named ``run.run_id``, tagged with it, with MLflow's own context tags first
    (user, source, git commit), as its fluent ``start_run`` sets them: the UI's User and Source
    columns are filled."""
    created = client.create_run(
        experiment_id,
        start_time=int(run.started_at * 1000) if run.started_at else None,
        tags=context_tags.result(),
        run_name=run.run_id,
    )
    return MlflowRun(created.info.run_id, experiment_id, {})
