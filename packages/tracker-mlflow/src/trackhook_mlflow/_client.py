"""An ``MlflowClient`` whose HTTP requests give up quickly, without touching MLflow's globals.

MLflow reads its HTTP retry count and timeout from ``MLFLOW_HTTP_REQUEST_*`` environment variables
at every request; their defaults retry a refused connection for about four minutes. Setting those
variables would change the behaviour of the user's own MLflow calls too, so instead this tracker's
client talks to a tracking server through a ``RestStore`` of its own that passes the configured
retry count and timeout with each request. Retrying beyond that is the core's job: it offers the
same batch again with backoff and keeps it in the spool meanwhile.

This module imports MLflow, and so is imported only on the delivery side.

MLflow has no public way to give a client a store of its own, so this module uses MLflow internals
(``MlflowClient._tracking_client``, ``TrackingServiceClient``, ``RestStore._call_endpoint`` and
``_METHOD_TO_INFO``), checked on MLflow 3.5.0 (the oldest supported: ``_METHOD_TO_INFO`` and
``response_proto`` are new in it) to 3.17.2. ``tests/test_mlflow_internals.py`` fails, naming the
internal, when a release moves one.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import http_request, verify_rest_response

from trackhook_mlflow._sqlite_store import prepare_sqlite_store
from trackhook_mlflow.config import MlflowConfig

__all__ = ["bounded_client"]

_HTTP_SCHEMES = frozenset({"http", "https"})


def bounded_client(tracking_uri: str, config: MlflowConfig) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri``; for a tracking server, with bounded retries; for
    a sqlite store that does not exist yet, after creating it whole (``_sqlite_store``)."""
    prepare_sqlite_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    if urlsplit(tracking_uri).scheme in _HTTP_SCHEMES:
        store = _BoundedRestStore(partial(get_default_host_creds, tracking_uri), config)
        # The client resolves its store through a process-wide cache shared with the user's
        # clients; this tracker's client gets a store of its own instead.
        client._tracking_client = _OwnStoreTrackingClient(tracking_uri, store)
    return client


class _BoundedRestStore(RestStore):
    """MLflow's REST store, with the retry count and timeout given per request."""

    def __init__(self, get_host_creds: Any, config: MlflowConfig) -> None:
        # MLflow leaves this __init__ unannotated; mypy's untyped_calls_exclude misses super().
        super().__init__(get_host_creds)  # type: ignore[no-untyped-call]
        self._max_retries = config.max_retries
        self._backoff = config.retry_backoff
        self._timeout = config.request_timeout

    def _call_endpoint(
        self,
        api: Any,
        json_body: str | None = None,
        endpoint: str | None = None,
        retry_timeout_seconds: float | None = None,
        response_proto: Any = None,
    ) -> Any:
        del retry_timeout_seconds  # only used by Databricks' SDK, which this store never uses
        v3_apis: Collection[Any] = getattr(self, "_V3_APIS", frozenset())  # not in older MLflow 3
        method_to_info = self._V3_METHOD_TO_INFO if api in v3_apis else self._METHOD_TO_INFO
        path, method = method_to_info[api]
        endpoint = endpoint or path
        response_proto = response_proto or api.Response()
        body = json.loads(json_body) if json_body is not None else None
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


class _OwnStoreTrackingClient(TrackingServiceClient):
    """MLflow's tracking client, bound to one store object instead of the shared cache."""

    def __init__(self, tracking_uri: str, store: RestStore) -> None:
        self._own_store = store
        super().__init__(tracking_uri)  # type: ignore[no-untyped-call]  # as in _BoundedRestStore

    @property
    def store(self) -> RestStore:
        return self._own_store

    def _log_url(self, run_id: str) -> None:
        """Print nothing: MLflow would print the run's URL, credentials included, to stdout."""
