"""The client context: MLflow's fluent API pointed at the trackhook run, then put back as it was.

Inside the context, ``mlflow.active_run()`` is the trackhook run, the global tracking URI is the
tracker's and the active experiment is the run's, so ``mlflow.log_param`` or ``mlflow.log_artifact``
land in that run and ``mlflow.start_run(nested=True)`` makes a child run beside it. On leaving, the
caller's global tracking URI, its ``MLFLOW_TRACKING_URI`` variable, its active experiment and the
thread's stack of active runs are restored exactly: a run the user had started is active again,
and none is ended.

``mlflow.start_run(run_id=...)`` is not used, because leaving it ends the run (FINISHED) and it
refuses to start while the user has a run of their own active.

This module imports MLflow; the tracker imports it only when a context is asked for.

MLflow has no public way to read the unset tracking URI or active experiment, or to make a run
active without ``start_run``, so this module uses ``fluent._active_run_stack``,
``fluent._active_experiment_id`` and ``_tracking_service.utils._tracking_uri``, checked on MLflow
3.5.0 to 3.17.2. ``tests/test_mlflow_internals.py`` fails, naming the internal, when one moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.tracking import fluent
from mlflow.tracking._tracking_service import utils as tracking_utils

__all__ = ["active_run_context"]


@contextmanager
def active_run_context(
    client: mlflow.MlflowClient, mlflow_run_id: str
) -> Iterator[mlflow.ActiveRun]:
    """Make the run ``mlflow_run_id`` of ``client``'s store the active MLflow run for a block."""
    # MLflow declares these two globals as ``= None`` without annotation, so mypy types them None;
    # they hold ``str | None``, and ``set_tracking_uri(None)`` is MLflow's own way to unset the URI.
    saved_uri: str | None = tracking_utils._tracking_uri
    saved_env = os.environ.get(MLFLOW_TRACKING_URI.name)
    saved_experiment: str | None = fluent._active_experiment_id
    stack = fluent._active_run_stack.get()
    saved_stack = list(stack)
    try:
        active = mlflow.ActiveRun(client.get_run(mlflow_run_id))
        mlflow.set_tracking_uri(client.tracking_uri)
        fluent._active_experiment_id = active.info.experiment_id  # type: ignore[assignment]
        stack.append(active)
        yield active
    finally:
        stack[:] = saved_stack
        fluent._active_experiment_id = saved_experiment  # type: ignore[assignment]
        mlflow.set_tracking_uri(saved_uri)  # type: ignore[arg-type]
        if saved_env is None:
            os.environ.pop(MLFLOW_TRACKING_URI.name, None)
        else:
            os.environ[MLFLOW_TRACKING_URI.name] = saved_env
