"""The client context: MLflow's fluent API pointed at the trackhook run, then put back as it was.

Inside the context, ``mlflow.active_run()`` is the trackhook run, the global tracking URI is the
tracker's and the active experiment is the run's, so ``mlflow.log_param`` or ``mlflow.log_artifact``
land in that run and ``mlflow.start_run(nested=True)`` makes a child run beside it. On leaving, the
caller's global tracking URI, its ``MLFLOW_TRACKING_URI`` variable, its active experiment and the
thread's stack of active runs are restored exactly: a run the user had started is active again,
and none is ended.

``mlflow.start_run(run_id=...)`` is not used, because leaving it ends the run (FINISHED) and it
refuses to start while the user has a run of their own active.

MLflow has no public way to read the unset tracking URI or the active experiment, or to make a
run active without ``start_run``: those reads and writes are ``_mlflow_internals``'.

This module imports MLflow; the tracker imports it only when a context is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.environment_variables import MLFLOW_TRACKING_URI

from trackhook_mlflow._mlflow_internals import (
    active_experiment_id,
    active_run_stack,
    global_tracking_uri,
    set_active_experiment_id,
)

__all__ = ["active_run_context"]


@contextmanager
def active_run_context(
    client: mlflow.MlflowClient, mlflow_run_id: str
) -> Iterator[mlflow.ActiveRun]:
    """Make the run ``mlflow_run_id`` of ``client``'s store the active MLflow run for a block."""
    saved_uri = global_tracking_uri()
    saved_env = os.environ.get(MLFLOW_TRACKING_URI.name)
    saved_experiment = active_experiment_id()
    stack = active_run_stack()
    saved_stack = list(stack)
    try:
        active = mlflow.ActiveRun(client.get_run(mlflow_run_id))
        mlflow.set_tracking_uri(client.tracking_uri)
        set_active_experiment_id(active.info.experiment_id)
        stack.append(active)
        yield active
    finally:
        stack[:] = saved_stack
        set_active_experiment_id(saved_experiment)
        # MLflow's own way to unset the URI, though its annotation says str | Path
        mlflow.set_tracking_uri(saved_uri)  # type: ignore[arg-type]
        if saved_env is None:
            os.environ.pop(MLFLOW_TRACKING_URI.name, None)
        else:
            os.environ[MLFLOW_TRACKING_URI.name] = saved_env
