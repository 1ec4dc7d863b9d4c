"""The tracker's ``MlflowClient``: HTTP requests that give up quickly, and no global changed.

MLflow reads its HTTP retry count and timeout from ``MLFLOW_HTTP_REQUEST_*`` environment variables
at every request; their defaults retry a refused connection for about four minutes. Setting those
variables would change the behaviour of the user's own MLflow calls too, so instead this tracker's
client talks to a tracking server through a REST store of its own that passes the configured
retry count and timeout with each request (``_mlflow_internals``, as MLflow has no public way to
give a client a store). Retrying beyond that is the core's job: it offers the same batch again
with backoff and keeps it in the spool meanwhile.

This module imports MLflow, and so is imported only on the delivery side.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.utils.credentials import get_default_host_creds

from trackhook_mlflow._mlflow_internals import BoundedRestStore, with_own_store
from trackhook_mlflow._sqlite_store import prepare_sqlite_store
from trackhook_mlflow.config import MlflowConfig

__all__ = ["bounded_client"]

_HTTP_SCHEMES = frozenset({"http", "https"})


def bounded_client(tracking_uri: str, config: MlflowConfig) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri``; for a tracking server, with bounded retries; for
    a sqlite store that does not exist yet, after creating it whole (``_sqlite_store``)."""
    prepare_sqlite_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    if urlsplit(tracking_uri).scheme not in _HTTP_SCHEMES:
        return client
    store = BoundedRestStore(
        partial(get_default_host_creds, tracking_uri),
        max_retries=config.max_retries,
        backoff=config.retry_backoff,
        timeout=config.request_timeout,
    )
    return with_own_store(client, store)
