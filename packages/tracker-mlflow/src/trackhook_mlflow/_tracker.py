"""``MlflowTracker``: the hooks that turn trackhook's records into MLflow experiments and runs.

The core has already made every key storable, formatted parameter keys as ``<key>_<step>``,
truncated long parameters and cut batches to MLflow's request limits (all from ``LIMITS``); what
is left here is MLflow itself: the run, found or created (``_runs``), one ``log_batch``
request per batch, the long and the changed parameters, the run's status, and telling the core
which of MLflow's errors refuse the values themselves (``ValuesRejected``: set aside, never offered
again) and which are outages (anything else: retried).

MLflow is imported inside the hooks, on the delivery thread, so that ``import trackhook_mlflow``
stays cheap and a user's ``track_this`` never waits for it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trackhook import (
    FileRecord,
    MetricRecord,
    ParamRecord,
    RunInfo,
    Status,
    TighterLimitsRequired,
    TrackerLimits,
    TrackhookError,
    ValuesRejected,
    hookimpl,
)
from trackhook.errors import warn_in_background
from trackhook.redaction import redact_text
from trackhook_mlflow._files import FileLogger
from trackhook_mlflow.config import MlflowConfig

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient
    from mlflow.exceptions import MlflowException

__all__ = [
    "LATEST_TAG_PREFIX",
    "LIMITS",
    "LONG_PARAM_FOLDER",
    "RUN_ID_TAG",
    "MlflowTracker",
    "MlflowTrackerError",
]

LIMITS = TrackerLimits(
    # mlflow.utils.validation: names match ^[/\w.\- ]*$ (":" is refused on Windows servers, so it
    # is left out here), keys and param values are bounded by MAX_ENTITY_KEY_LENGTH and
    # MAX_PARAM_VAL_LENGTH (6000 since MLflow 2.8; older servers say 500 and are handled by
    # TighterLimitsRequired), batches by MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH and
    # MAX_ENTITIES_PER_BATCH.
    key_chars=r"[/\w.\- ]",
    max_key_length=250,
    max_param_length=6000,
    param_key="{key}_{step}",
    max_metrics_per_batch=1000,
    max_params_per_batch=100,
    max_values_per_batch=1000,
    # MLflow also refuses a key whose normalised path differs from it (a//b, a/, /a, ./a)
    path_keys=True,
)

RUN_ID_TAG = "trackhook.run_id"
"""The run tag holding the trackhook run_id: how a run_id finds its MLflow run again."""

LATEST_TAG_PREFIX = "trackhook.latest."
"""Prefix of the run tag holding a param's latest value when it was tracked again, changed."""

LONG_PARAM_FOLDER = "trackhook/params"
"""Artifact folder of the full text of truncated params: ``<folder>/<param key>.txt``; a key that
is not a plain relative path (``..``, ``/abs``, a NUL) becomes one flat file name in the folder."""

_RUN_STATUS: dict[str, str] = {"SUCCESS": "FINISHED", "FAIL": "FAILED"}
_PARAM_TOO_LONG = re.compile(r"param.*value.*length (?:limit )?of (\d+)", re.IGNORECASE | re.DOTALL)
# MLflow's validation of what it is given (a name, a value, a param changed): from the local store
# and, as the server's own JSON answer, from a tracking server. A bare HTTP 400 (a proxy's answer)
# becomes BAD_REQUEST, never this code.
_INVALID_VALUE = "INVALID_PARAMETER_VALUE"
# The database refused what it was given (an integrity or data error, e.g. a constraint); MLflow
# answers BAD_REQUEST. Only counted when MLflow itself says so (see ``_refused_for_content``).
_DATABASE_REFUSED = "BAD_REQUEST"
_ACTIVE = "active"
# A part of an artifact path that is one plain name: never "", "." or "..", no leading or trailing
# dot or space (which Windows strips), no NUL, "\\" or ":".
_PLAIN_NAME = re.compile(r"[\w\-](?:[\w.\- ]*[\w\-])?")
_FLAT_NAME_LENGTH = 200


class MlflowTrackerError(TrackhookError):
    """MLflow holds something that stops this tracker (for example a deleted experiment)."""


@dataclass
class _OpenRun:
    """What the tracker knows about one open MLflow run."""

    client: MlflowClient
    mlflow_run_id: str
    experiment_id: str
    params: dict[str, str] = field(default_factory=dict)
    """Param values already in MLflow: MLflow refuses to change them, so they are checked first."""
    changed: set[str] = field(default_factory=set)
    """Params of which this process has set a latest-value tag (and warned about)."""


class MlflowTracker:
    """Sends trackhook values to MLflow: the tag names the experiment, the run_id the run."""

    config_model = MlflowConfig
    limits = LIMITS

    def __init__(self, config: MlflowConfig) -> None:
        self.config = config
        self._runs: dict[str, _OpenRun] = {}
        # The delivery thread opens runs; the user's thread may ask for a client context first.
        self._lock = threading.Lock()
        self._files = FileLogger()

    @hookimpl
    def trackhook_log_file(self, run: RunInfo, file: FileRecord) -> None:
        """An image at its step (``log_image``), a file as the artifact ``<key>/step_<s>/<name>``
        (see ``_files``)."""
        state = self._state(run)
        self._files.log(state.client, state.mlflow_run_id, file)

    @hookimpl
    def trackhook_open_run(self, run: RunInfo) -> Mapping[str, str]:
        with self._lock:
            state = self._open(run)
        return {
            "mlflow_run_id": state.mlflow_run_id,
            "experiment_id": state.experiment_id,
            "experiment_name": self._experiment_name(run),
            "tracking_uri": redact_text(state.client.tracking_uri),
        }

    @hookimpl
    def trackhook_log_batch(
        self, run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
    ) -> None:
        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException

        state = self._state(run)
        entities = [
            Metric(record.key, float(record.value), int(record.timestamp * 1000), record.step)
            for record in metrics
        ]
        try:
            self._send(state, entities, params)
        except MlflowException as error:
            demand = _tighter_limits(error)
            if demand is not None:
                raise demand from error
            if not _refused_for_content(error):
                raise  # an outage, a server error, credentials: the core retries the batch
            self._learn_run(state)
            self._send_again(state, entities, params)

    def _learn_run(self, state: _OpenRun) -> None:
        """After MLflow refused a batch, learn what it holds that may explain the refusal.

        Another process of the run may have logged some of these params with other values (the
        batch is then sent again with latest-value tags); a deleted run refuses everything, which
        is no fault of the values and must not set them aside.
        """
        mlflow_run = state.client.get_run(state.mlflow_run_id)
        if mlflow_run.info.lifecycle_stage != _ACTIVE:
            raise MlflowTrackerError(
                f"the MLflow run {state.mlflow_run_id} is {mlflow_run.info.lifecycle_stage}, so "
                "it takes no values: restore it (`mlflow runs restore --run-id "
                f"{state.mlflow_run_id}`); the values wait in the spool until then (`trackhook "
                "sync` delivers them once the run has closed)"
            )
        state.params = dict(mlflow_run.data.params)

    def _send_again(
        self, state: _OpenRun, metrics: list[Any], params: Sequence[ParamRecord]
    ) -> None:
        """The second offer of a refused batch: refused again for its content, it never will be
        taken (a race between processes logging one param passes the second time)."""
        from mlflow.exceptions import MlflowException

        try:
            self._send(state, metrics, params)
        except MlflowException as error:
            if not _refused_for_content(error):
                raise
            # the first line: a database's refusal goes on with the SQL and every value sent
            reason = str(error.message).strip().split("\n", 1)[0]
            raise ValuesRejected(redact_text(f"MLflow refused them: {reason}")) from error

    @hookimpl
    def trackhook_close_run(self, run: RunInfo, status: Status) -> None:
        # `trackhook sync` may close a run this process never opened: it is found, not made
        # RUNNING first
        state = self._state(run, reactivate=False)
        state.client.set_terminated(state.mlflow_run_id, _RUN_STATUS[status])
        with self._lock:
            self._runs.pop(run.run_id, None)

    @hookimpl
    def trackhook_client_context(self, run: RunInfo) -> AbstractContextManager[ActiveRun]:
        return self._client_context(run)

    @contextmanager
    def _client_context(self, run: RunInfo) -> Iterator[ActiveRun]:
        from trackhook_mlflow._context import active_run_context

        state = self._state(run)
        with active_run_context(state.client, state.mlflow_run_id) as active:
            yield active

    def _state(self, run: RunInfo, *, reactivate: bool = True) -> _OpenRun:
        with self._lock:
            state = self._runs.get(run.run_id)
            return state if state is not None else self._open(run, reactivate=reactivate)

    def _experiment_name(self, run: RunInfo) -> str:
        return run.tag or self.config.default_experiment

    def _open(self, run: RunInfo, *, reactivate: bool = True) -> _OpenRun:
        """Find the MLflow run of ``run.run_id`` (by its tag) and continue it, or create it."""
        import mlflow

        from trackhook_mlflow._client import bounded_client
        from trackhook_mlflow._runs import open_mlflow_run

        client = bounded_client(self.config.tracking_uri or mlflow.get_tracking_uri(), self.config)
        found = open_mlflow_run(
            client, run, self._experiment_name(run), self.config.tags, reactivate=reactivate
        )
        state = _OpenRun(client, found.run_id, found.experiment_id, found.params)
        self._runs[run.run_id] = state
        return state

    def _send(self, state: _OpenRun, metrics: list[Any], params: Sequence[ParamRecord]) -> None:
        """One ``log_batch`` request, after the long params' full text is stored as artifacts."""
        from mlflow.entities import Param, RunTag

        new: dict[str, ParamRecord] = {}
        latest: dict[str, ParamRecord] = {}
        for record in params:
            known = new[record.key].text if record.key in new else state.params.get(record.key)
            if known is None:
                new[record.key] = record
            elif known != record.text or record.key in latest or record.key in state.changed:
                latest[record.key] = record  # changed, or changed back: the tag follows
        for key, record in [*new.items(), *latest.items()]:
            if record.full_value is not None:
                suffix = ".txt" if key in new else ".latest.txt"
                state.client.log_text(
                    state.mlflow_run_id, record.full_value, _long_param_artifact(key, suffix)
                )
        tags = [
            RunTag(LIMITS.storable_key(LATEST_TAG_PREFIX + key), record.text)
            for key, record in latest.items()
        ]
        state.client.log_batch(
            state.mlflow_run_id,
            metrics=metrics,
            params=[Param(key, record.text) for key, record in new.items()],
            tags=tags,
            synchronous=True,
        )
        state.params.update({key: record.text for key, record in new.items()})
        for key in latest.keys() - state.changed:
            state.changed.add(key)
            warn_in_background(
                f"MLflow cannot change the param {key!r} of run "
                f"{state.mlflow_run_id}: it keeps its first value {state.params[key]!r}; the "
                f"latest value is in the run tag {LIMITS.storable_key(LATEST_TAG_PREFIX + key)!r} "
                "(and in the trackhook run log)"
            )


def _tighter_limits(error: Exception) -> TighterLimitsRequired | None:
    """A server that refuses a param shorter than the declared limit asks for a lower one."""
    match = _PARAM_TOO_LONG.search(str(error))
    if match is None:
        return None
    limit = int(match.group(1))
    if LIMITS.max_param_length is not None and limit >= LIMITS.max_param_length:
        return None
    return TighterLimitsRequired(
        f"the MLflow server refused a param value: {error}", max_param_length=limit
    )


def _refused_for_content(error: MlflowException) -> bool:
    """Whether MLflow refused what it was given, rather than failing to take it (an outage).

    Decided on MLflow's error code and where the error comes from: MLflow's own validation
    (``INVALID_PARAMETER_VALUE``), or its database refusing the data (``BAD_REQUEST``) as a
    tracking server reports it in its JSON answer or as the local store raises it from the
    database's error. A bare HTTP 400 from something in front of the server (a proxy) has
    neither, and neither have connection errors, 5xx, 429 or credentials: those are retried.
    """
    from mlflow.exceptions import RestException

    if error.error_code == _INVALID_VALUE:
        return True
    if error.error_code == _DATABASE_REFUSED:
        return isinstance(error, RestException) or error.__cause__ is not None
    return False


def _long_param_artifact(key: str, suffix: str) -> str:
    """The artifact path of a long param's full text: always inside ``LONG_PARAM_FOLDER``.

    The core makes keys storable, but this path is written to disk (the run's artifact folder)
    before MLflow validates the key, so it is made safe here whatever the key: a key whose every
    ``/`` part is a plain name keeps its folders; any other (``..``, ``/abs``, ``a/../../b``, a
    NUL, a backslash) becomes one flat file name, with a hash of the key so that two keys never
    share a file.
    """
    if all(_PLAIN_NAME.fullmatch(part) for part in key.split("/")):
        return f"{LONG_PARAM_FOLDER}/{key}{suffix}"
    flat = re.sub(r"[^\w\-]", "_", key)[:_FLAT_NAME_LENGTH]
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{LONG_PARAM_FOLDER}/{flat}_{digest}{suffix}"
