"""The private MLflow internals the adapter relies on are still where it expects them.

No public MLflow API does what these do (a client with a store of its own, a run made active
without ``start_run``, a sqlite store created whole before it gets its final name). Each test
fails with a message naming the internal, the module of the adapter that uses it and the MLflow
version that moved it, so a new MLflow release breaks here, loudly, and not silently elsewhere.
"""

from __future__ import annotations

import inspect
from typing import Any

import mlflow
from mlflow.store.db import utils as db_utils
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking import fluent
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.tracking._tracking_service.client import TrackingServiceClient

CHECKED_ON = "MLflow 3.5.0 and 3.17.2"


def _moved(internal: str, user: str, detail: str) -> str:
    return (
        f"MLflow {mlflow.__version__} changed {internal}, which trackhook_mlflow.{user} relies on "
        f"(checked on {CHECKED_ON}): {detail}. Adapt {user} to it, or lower the upper bound of "
        "mlflow-skinny in pyproject.toml"
    )


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_rest_store_call_endpoint_is_still_overridable() -> None:
    expected = ["self", "api", "json_body", "endpoint", "retry_timeout_seconds", "response_proto"]
    found = _parameters(RestStore._call_endpoint)
    assert found == expected, _moved(
        "RestStore._call_endpoint", "_client", f"its parameters are {found}, not {expected}"
    )
    assert isinstance(getattr(RestStore, "_METHOD_TO_INFO", None), dict), _moved(
        "RestStore._METHOD_TO_INFO", "_client", "it is no longer a dict of api -> (path, method)"
    )


def test_a_client_still_reaches_its_store_through_its_tracking_client() -> None:
    client = mlflow.MlflowClient("sqlite:///:memory:")
    assert isinstance(getattr(client, "_tracking_client", None), TrackingServiceClient), _moved(
        "MlflowClient._tracking_client", "_client", "a client no longer holds one"
    )
    assert isinstance(inspect.getattr_static(TrackingServiceClient, "store"), property), _moved(
        "TrackingServiceClient.store", "_client", "it is no longer a property"
    )
    assert _parameters(TrackingServiceClient.__init__) == ["self", "tracking_uri"], _moved(
        "TrackingServiceClient.__init__", "_client", "it takes other arguments than tracking_uri"
    )
    assert callable(getattr(TrackingServiceClient, "_log_url", None)), _moved(
        "TrackingServiceClient._log_url", "_client", "it is gone"
    )


def test_the_fluent_api_globals_are_still_where_the_client_context_sets_them() -> None:
    stack = getattr(fluent, "_active_run_stack", None)
    assert stack is not None, _moved("mlflow.tracking.fluent._active_run_stack", "_context", "gone")
    assert isinstance(stack.get(), list), _moved(
        "mlflow.tracking.fluent._active_run_stack", "_context", "no thread's list of active runs"
    )
    assert hasattr(fluent, "_active_experiment_id"), _moved(
        "mlflow.tracking.fluent._active_experiment_id", "_context", "it is gone"
    )
    assert hasattr(tracking_utils, "_tracking_uri"), _moved(
        "mlflow.tracking._tracking_service.utils._tracking_uri", "_context", "it is gone"
    )


def test_the_database_helpers_still_take_what_the_sqlite_store_passes() -> None:
    for name, expected in (
        ("create_sqlalchemy_engine", ["db_uri"]),
        ("_initialize_tables", ["engine"]),
        ("_get_latest_schema_revision", []),
    ):
        helper = getattr(db_utils, name, None)
        assert helper is not None, _moved(f"mlflow.store.db.utils.{name}", "_sqlite_store", "gone")
        found = _parameters(helper)
        assert found == expected, _moved(
            f"mlflow.store.db.utils.{name}", "_sqlite_store", f"it takes {found}, not {expected}"
        )
