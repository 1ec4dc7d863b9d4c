"""The private MLflow internals the adapter relies on are still where, and what, it expects.

No public MLflow API does what these do (a client with a store of its own, the fluent API's state
saved and restored, a sqlite store created whole before it gets its final name). They are all in
``trackhook_mlflow._mlflow_internals``; each test here fails with a message naming the internal,
that module and the MLflow versions it was checked on, so that a new MLflow release breaks here,
loudly, and not silently elsewhere. The last test keeps every other module of the package off
MLflow's private names.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import sqlite3
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.service_pb2 import LogBatch
from mlflow.store.db import utils as db_utils
from mlflow.store.db.utils import create_sqlalchemy_engine
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import message_to_json

import trackhook_mlflow
from trackhook_mlflow import _mlflow_internals as internals

PACKAGE = Path(trackhook_mlflow.__file__).parent
INTERNALS = Path(internals.__file__).name


def _moved(internal: str, detail: str) -> str:
    return (
        f"MLflow {mlflow.__version__} changed {internal}, which trackhook_mlflow._mlflow_internals "
        f"relies on (checked on MLflow {' and '.join(internals.CHECKED_ON)}): {detail}. Adapt "
        "_mlflow_internals to it, or lower the upper bound of mlflow-skinny in pyproject.toml"
    )


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.fixture
def fluent_state_restored() -> Iterator[None]:
    """Whatever a test does to MLflow's fluent globals is undone."""
    uri, experiment = internals.global_tracking_uri(), internals.active_experiment_id()
    stack = list(internals.active_run_stack())
    yield
    internals.active_run_stack()[:] = stack
    internals.set_active_experiment_id(experiment)
    mlflow.set_tracking_uri(uri)  # type: ignore[arg-type]  # None unsets it


def test_rest_store_call_endpoint_is_still_overridable() -> None:
    expected = ["self", "api", "json_body", "endpoint", "retry_timeout_seconds", "response_proto"]
    found = _parameters(RestStore._call_endpoint)
    assert found == expected, _moved(
        "RestStore._call_endpoint", f"its parameters are {found}, not {expected}"
    )
    method_to_info = getattr(RestStore, "_METHOD_TO_INFO", None)
    assert isinstance(method_to_info, dict), _moved(
        "RestStore._METHOD_TO_INFO", "it is no longer a dict of api -> (path, method)"
    )
    assert method_to_info.get(LogBatch) == ("/api/2.0/mlflow/runs/log-batch", "POST"), _moved(
        "RestStore._METHOD_TO_INFO", f"LogBatch maps to {method_to_info.get(LogBatch)}"
    )
    if hasattr(RestStore, "_V3_APIS"):
        assert isinstance(getattr(RestStore, "_V3_METHOD_TO_INFO", None), dict), _moved(
            "RestStore._V3_METHOD_TO_INFO", "_V3_APIS is there, but not this dict beside it"
        )


def test_the_log_batch_json_the_store_writes_is_mlflows_own() -> None:
    class Recording(internals.BoundedRestStore):
        def _request(self, api: Any, body: Any, *_: Any) -> None:
            self.sent = (api, body)

    metrics = [
        Metric("loss", 0.25, 1_700_000_000_000, 2**40),
        Metric("nan", math.nan, 1, 0),
        Metric("up", math.inf, 2, 1),
        Metric("down", -math.inf, 3, 2),
        Metric("eval", 1.0, 4, 3, model_id="m-1", dataset_name="val", dataset_digest="d1"),
    ]
    params, tags = [Param("spam_0", "hello")], [RunTag("note", "ünï")]
    store = Recording(
        partial(get_default_host_creds, "http://127.0.0.1"), max_retries=0, backoff=0, timeout=1
    )
    store.log_batch("run-1", metrics, params, tags)
    expected = LogBatch(
        run_id="run-1",
        metrics=[metric.to_proto() for metric in metrics],
        params=[param.to_proto() for param in params],
        tags=[tag.to_proto() for tag in tags],
    )
    assert store.sent[0] is LogBatch
    assert json.loads(json.dumps(store.sent[1])) == json.loads(message_to_json(expected)), _moved(
        "the JSON of LogBatch (RestStore.log_batch, Metric.to_proto)",
        "BoundedRestStore.log_batch no longer writes what MLflow's own store writes",
    )


def test_a_client_still_reaches_its_store_through_its_tracking_client() -> None:
    client = mlflow.MlflowClient("sqlite:///:memory:")
    assert isinstance(getattr(client, "_tracking_client", None), TrackingServiceClient), _moved(
        "MlflowClient._tracking_client", "a client no longer holds one"
    )
    assert isinstance(inspect.getattr_static(TrackingServiceClient, "store"), property), _moved(
        "TrackingServiceClient.store", "it is no longer a property"
    )
    assert _parameters(TrackingServiceClient.__init__) == ["self", "tracking_uri"], _moved(
        "TrackingServiceClient.__init__", "it takes other arguments than tracking_uri"
    )
    assert callable(getattr(TrackingServiceClient, "_log_url", None)), _moved(
        "TrackingServiceClient._log_url", "it is gone"
    )


def test_a_client_given_its_own_store_uses_it() -> None:
    uri = "http://127.0.0.1:1"
    store = internals.BoundedRestStore(
        partial(get_default_host_creds, uri), max_retries=0, backoff=0, timeout=1
    )
    client = internals.with_own_store(mlflow.MlflowClient(uri), store)
    assert client._tracking_client.store is store, _moved(
        "MlflowClient._tracking_client", "the client no longer reads its store from it"
    )


def test_a_client_given_its_own_store_stores_artifacts_on_its_own_server(
    proxied_mlflow_server: Any, tmp_path: Path, fluent_state_restored: None
) -> None:
    found = _parameters(TrackingServiceClient._get_artifact_repo)
    assert found == ["self", "resource_id", "resource"], _moved(
        "TrackingServiceClient._get_artifact_repo", f"its parameters are {found}"
    )
    # MLflow 3.5 resolves mlflow-artifacts: URIs against this, not against the client's server
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    uri = proxied_mlflow_server.url
    store = internals.BoundedRestStore(
        partial(get_default_host_creds, uri), max_retries=0, backoff=0, timeout=30
    )
    client = internals.with_own_store(mlflow.MlflowClient(uri), store)
    run = client.create_run(client.create_experiment(f"internals-{tmp_path.name}"))
    (tmp_path / "stored.txt").write_text("stored", encoding="utf-8")
    try:
        client.log_artifact(run.info.run_id, str(tmp_path / "stored.txt"), "folder")
    except MlflowException as error:
        pytest.fail(_moved("TrackingServiceClient._get_artifact_repo", f"log_artifact: {error}"))
    listed = [info.path for info in client.list_artifacts(run.info.run_id, "folder")]
    assert listed == ["folder/stored.txt"], _moved(
        "TrackingServiceClient._get_artifact_repo", "the client no longer resolves it"
    )


def test_the_global_tracking_uri_is_read_as_set_or_unset(
    tmp_path: Path, fluent_state_restored: None
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    assert internals.global_tracking_uri() == uri, _moved(
        "mlflow.tracking._tracking_service.utils._tracking_uri",
        "it no longer holds what mlflow.set_tracking_uri sets",
    )
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # MLflow's own way to unset it
    assert internals.global_tracking_uri() is None, _moved(
        "mlflow.tracking._tracking_service.utils._tracking_uri", "it is not None once unset"
    )


def test_the_active_experiment_is_set_and_read(tmp_path: Path, fluent_state_restored: None) -> None:
    # not with mlflow.set_experiment, which also sets MLFLOW_EXPERIMENT_ID for the whole process
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = mlflow.MlflowClient().create_experiment("internals")
    internals.set_active_experiment_id(experiment_id)
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id, _moved(
        "mlflow.tracking.fluent._active_experiment_id", "mlflow.start_run no longer reads it"
    )
    assert internals.active_experiment_id() == experiment_id, _moved(
        "mlflow.tracking.fluent._active_experiment_id", "it no longer holds what was set"
    )
    internals.set_active_experiment_id(None)
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id != experiment_id, _moved(
        "mlflow.tracking.fluent._active_experiment_id", "unsetting it no longer unsets it"
    )


def test_a_run_pushed_on_the_stack_is_the_active_run(fluent_state_restored: None) -> None:
    stack = internals.active_run_stack()
    assert isinstance(stack, list), _moved(
        "mlflow.tracking.fluent._active_run_stack", "no thread's list of active runs"
    )
    pushed = object()
    stack.append(pushed)  # type: ignore[arg-type]  # any object: only its place is checked
    assert mlflow.active_run() is pushed, _moved(
        "mlflow.tracking.fluent._active_run_stack", "mlflow.active_run() no longer reads it"
    )


def test_the_tables_are_created_at_the_latest_schema(tmp_path: Path) -> None:
    for name, expected in (("_initialize_tables", ["engine"]), ("_get_latest_schema_revision", [])):
        helper = getattr(db_utils, name, None)
        assert helper is not None, _moved(f"mlflow.store.db.utils.{name}", "it is gone")
        assert _parameters(helper) == expected, _moved(
            f"mlflow.store.db.utils.{name}", f"it takes {_parameters(helper)}, not {expected}"
        )
    database = tmp_path / "mlflow.db"
    engine = create_sqlalchemy_engine(f"sqlite:///{database}")
    try:
        internals.initialize_tables(engine)
    finally:
        engine.dispose()
    with sqlite3.connect(database) as connection:
        (schema,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert schema == internals.latest_schema_revision(), _moved(
        "mlflow.store.db.utils._initialize_tables / _get_latest_schema_revision",
        f"the tables are created at schema {schema}, the latest is said to be "
        f"{internals.latest_schema_revision()}",
    )


def test_no_other_module_of_the_package_reaches_a_private_mlflow_name() -> None:
    found = [
        f"{path.name}:{line}: {what}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != INTERNALS
        for line, what in _private_uses(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, (
        f"private MLflow names outside {INTERNALS}, which alone may use them (and names each "
        "with the versions it was checked on): " + "; ".join(found)
    )


def _private_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Imports of private MLflow modules or names, ``x._name`` on anything but self or cls, and
    classes built on MLflow's (whose ``self._name`` would be MLflow's)."""
    from_mlflow: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            names = [alias.name for alias in node.names]
            from_mlflow.update(alias.asname or alias.name for alias in node.names)
            if any(_private(part) for part in [*(node.module or "").split("."), *names]):
                yield node.lineno, f"from {node.module} import {', '.join(names)}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mlflow" and any(
                    _private(part) for part in alias.name.split(".")
                ):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.Attribute) and _private(node.attr) and not _on_self(node):
            yield node.lineno, ast.unparse(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(base) for base in node.bases]
            if any(base.split(".")[0] in from_mlflow | {"mlflow"} for base in bases):
                yield node.lineno, f"class {node.name}({', '.join(bases)})"


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
