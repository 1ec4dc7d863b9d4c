"""Every private MLflow internal that trackhook-mlflow relies on, and no other module touches one.

MLflow has no public API for what these do, so a minor release may move them. They are kept in
this one module so that such a release breaks here and in ``tests/test_mlflow_internals.py``
(which checks each of them, and that no other module of the package reaches a private MLflow
name), loudly, rather than silently elsewhere:

- **a client with a REST store of its own** (``_client``): MLflow reads its HTTP retry count and
  timeout from process-wide environment variables, resolves every client's store through a cache
  shared with the user's clients, and prints each run's URL, credentials included, to stdout.
  ``BoundedRestStore`` passes the tracker's retry count and timeout with each request
  (overriding ``RestStore._call_endpoint``, with ``_METHOD_TO_INFO`` and ``_V3_METHOD_TO_INFO``;
  it also writes the JSON of ``log_batch`` itself, several times faster than MLflow's protobuf)
  and ``with_own_store`` gives a client that store (``MlflowClient._tracking_client``, a
  ``TrackingServiceClient`` from a private module, whose ``_log_url`` prints nothing). That
  client also resolves a run's artifact repository itself (``_get_artifact_repo``) with its own
  tracking URI: MLflow 3.5 resolves an ``mlflow-artifacts:`` URI (a server that proxies
  artifacts) against the *global* tracking URI, which the tracker never sets, and caches the
  repository in a cache shared with the user's clients.
- **the fluent API's state** (``_context``): the client context saves and restores the global
  tracking URI as set or unset (``_tracking_service.utils._tracking_uri``; MLflow's getter
  resolves an unset one), the active experiment (``fluent._active_experiment_id``) and this
  thread's stack of active runs (``fluent._active_run_stack``; ``start_run`` would refuse while
  the user has a run active, and end the run on leaving).
- **a sqlite store's tables created in a file of the tracker's choosing** (``_sqlite_store``):
  ``mlflow.store.db.utils._initialize_tables`` and ``_get_latest_schema_revision``; the public
  ``SqlAlchemyStore`` would create them in place, under the final name.

Checked on the MLflow releases in ``CHECKED_ON``: 3.5.0 is the oldest supported (``_METHOD_TO_INFO``
and the ``response_proto`` argument are new in it), 3.17.2 the newest when last checked.

This module imports MLflow, and so is imported only on the delivery side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

from mlflow import ActiveRun, MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.protos.service_pb2 import LogBatch
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.db import utils as db_utils
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking import fluent
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response
from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri
from sqlalchemy.engine import Engine

__all__ = [
    "CHECKED_ON",
    "BoundedRestStore",
    "active_experiment_id",
    "active_run_stack",
    "global_tracking_uri",
    "initialize_tables",
    "latest_schema_revision",
    "set_active_experiment_id",
    "with_own_store",
]

CHECKED_ON = ("3.5.0", "3.17.2")
"""The MLflow releases on which every internal below was checked."""


class BoundedRestStore(RestStore):
    """MLflow's REST store, with the retry count, backoff and timeout given per request."""

    def __init__(
        self,
        get_host_creds: Callable[[], MlflowHostCreds],
        *,
        max_retries: int,
        backoff: float,
        timeout: float,
    ) -> None:
        # MLflow leaves this __init__ unannotated; mypy's untyped_calls_exclude misses super().
        super().__init__(get_host_creds)  # type: ignore[no-untyped-call]
        self._max_retries = max_retries
        self._backoff = backoff
        self._timeout = timeout

    def _call_endpoint(
        self,
        api: Any,
        json_body: str | None = None,
        endpoint: str | None = None,
        retry_timeout_seconds: float | None = None,
        response_proto: Any = None,
    ) -> Any:
        del retry_timeout_seconds  # only used by Databricks' SDK, which this store never uses
        body = json.loads(json_body) if json_body is not None else None
        return self._request(api, body, endpoint, response_proto)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None:
        """MLflow's ``runs/log-batch`` request, with the JSON of its REST API written directly.

        MLflow's own store builds a protobuf message and prints it as indented JSON, which this
        store then parses again: most of the client's time for a batch of 1,000 metrics. The
        request is the same, field for field (``RestStore.log_batch`` via ``message_to_json``).
        """
        entities = {
            "metrics": [_metric_json(metric) for metric in metrics],
            "params": [{"key": param.key, "value": param.value} for param in params],
            "tags": [{"key": tag.key, "value": tag.value} for tag in tags],
        }
        # as protobuf's JSON, which leaves out an empty list
        self._request(LogBatch, {"run_id": run_id} | {k: v for k, v in entities.items() if v})

    def _request(
        self, api: Any, body: Any, endpoint: str | None = None, response_proto: Any = None
    ) -> Any:
        v3_apis: Collection[Any] = getattr(self, "_V3_APIS", frozenset())  # not in MLflow 3.5
        method_to_info = self._V3_METHOD_TO_INFO if api in v3_apis else self._METHOD_TO_INFO
        path, method = method_to_info[api]
        endpoint = endpoint or path
        response_proto = response_proto or api.Response()
        payload = {"params": body} if method == "GET" else {"json": body}
        response = http_request(
            host_creds=self.get_host_creds(),
            endpoint=endpoint,
            method=method,
            max_retries=self._max_retries,
            backoff_factor=self._backoff,
            timeout=self._timeout,
            **payload,
        )
        response = verify_rest_response(response, endpoint)
        if response.status_code == 204:
            return response_proto
        parse_dict(js_dict=json.loads(response.text), message=response_proto)
        return response_proto


_OPTIONAL_METRIC_FIELDS = ("model_id", "dataset_name", "dataset_digest", "run_id")
"""Fields ``Metric.to_proto`` sets only when they hold a value."""
_NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _metric_json(metric: Metric) -> dict[str, Any]:
    """A metric as ``message_to_json`` writes it: int64 fields as numbers, a double that is not
    finite as protobuf's JSON names it."""
    value = metric.value
    item: dict[str, Any] = {
        "key": metric.key,
        "value": value if math.isfinite(value) else _NOT_FINITE[str(value)],
        "timestamp": metric.timestamp,
        "step": metric.step,
    }
    for name in _OPTIONAL_METRIC_FIELDS:
        optional = getattr(metric, name, None)
        if optional:
            item[name] = optional
    return item


def with_own_store(client: MlflowClient, store: RestStore) -> MlflowClient:
    """``client``, talking to its tracking server through ``store`` alone.

    The client would resolve its store through a process-wide cache shared with the user's
    clients; this gives it a store of its own instead.
    """
    client._tracking_client = _OwnStoreTrackingClient(client.tracking_uri, store)
    return client


class _OwnStoreTrackingClient(TrackingServiceClient):
    """MLflow's tracking client, bound to one store object instead of the shared cache."""

    def __init__(self, tracking_uri: str, store: RestStore) -> None:
        self._own_store = store
        self._artifact_repos: dict[str, ArtifactRepository] = {}
        super().__init__(tracking_uri)  # type: ignore[no-untyped-call]  # as in BoundedRestStore

    @property
    def store(self) -> RestStore:
        return self._own_store

    def _get_artifact_repo(
        self, resource_id: str, *, resource: Literal["run", "logged_model"] = "run"
    ) -> ArtifactRepository:
        """The artifact repository of the run ``resource_id``, resolved with this client's
        tracking URI (as MLflow 3.17 does; 3.5 reads the global one, and fails on a server
        that proxies artifacts) and cached by this client alone."""
        if resource != "run":  # a logged model's: the tracker never stores any
            repository: ArtifactRepository = super()._get_artifact_repo(
                resource_id, resource=resource
            )
            return repository
        if resource_id not in self._artifact_repos:
            run = self.get_run(resource_id)  # type: ignore[no-untyped-call]  # unannotated
            artifact_uri = add_databricks_profile_info_to_artifact_uri(
                run.info.artifact_uri, self.tracking_uri
            )
            self._artifact_repos[resource_id] = get_artifact_repository(
                artifact_uri, tracking_uri=self.tracking_uri
            )
        return self._artifact_repos[resource_id]

    def _log_url(self, run_id: str) -> None:
        """Print nothing: MLflow would read the run back to print its URL, credentials included,
        to stdout, at every ``set_terminated``."""


def global_tracking_uri() -> str | None:
    """The tracking URI set with ``mlflow.set_tracking_uri``; None while none is set."""
    # Declared ``= None`` without annotation in MLflow, so mypy types it None; it holds str | None.
    uri: str | None = tracking_utils._tracking_uri
    return uri


def active_experiment_id() -> str | None:
    """The experiment set active in this process (``mlflow.set_experiment``), if any."""
    experiment_id: str | None = fluent._active_experiment_id  # as in global_tracking_uri
    return experiment_id


def set_active_experiment_id(experiment_id: str | None) -> None:
    """Make ``experiment_id`` the active experiment without a request to the store (None: none);
    ``mlflow.set_experiment`` would look it up first, and cannot unset it."""
    fluent._active_experiment_id = experiment_id  # type: ignore[assignment]  # as above


def active_run_stack() -> list[ActiveRun]:
    """This thread's stack of active runs, itself: ``mlflow.active_run()`` is its last item."""
    stack: list[ActiveRun] = fluent._active_run_stack.get()
    return stack


def initialize_tables(engine: Engine) -> None:
    """Create MLflow's tables in the database of ``engine`` and migrate them to the latest
    schema."""
    db_utils._initialize_tables(engine)


def latest_schema_revision() -> str:
    """The alembic revision of MLflow's latest database schema."""
    return str(db_utils._get_latest_schema_revision())
