"""Readers of what TensorBoard itself reads from the event files, as its UI reads them.

``read_run_folder`` loads one run folder with TensorBoard's ``plugin_event_accumulator`` (every
point kept: ``size_guidance`` 0, where the UI samples); ``hparams_table`` asks TensorBoard's HPARAMS
plugin backend for its experiment and session groups, which is the table the HPARAMS tab shows.

The readers live here rather than in a module of their own because the repository runs pytest with
``--import-mode=importlib``, where test modules cannot import their neighbours.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
)
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

_STATUS = {api_pb2.STATUS_SUCCESS: "SUCCESS", api_pb2.STATUS_FAILURE: "FAIL"}
_KEEP_EVERY_POINT = {accumulator.TENSORS: 0}


@dataclass
class RunFolder:
    """One TensorBoard run as TensorBoard reads it."""

    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """``tag -> [(step, value), ...]`` in the order written."""
    texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    images: dict[str, list[tuple[int, int, int, bytes]]] = field(default_factory=dict)
    """``tag -> [(step, width, height, encoded image), ...]`` as the IMAGES tab reads them."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """The HPARAMS session's hparams (TensorBoard keeps the first session record of a folder)."""
    status: str | None = None
    """``SUCCESS`` or ``FAIL`` from the session's end, ``None`` when the session has not ended."""

    def last_scalars(self) -> dict[str, dict[int, float]]:
        """``tag -> {step: value}``; a repeated step keeps its last value."""
        return {tag: dict(points) for tag, points in self.scalars.items()}


def read_run_folder(folder: Path) -> RunFolder:
    """Everything TensorBoard reads from the event files of the run folder ``folder``."""
    run = accumulator.EventAccumulator(str(folder), size_guidance=_KEEP_EVERY_POINT)
    run.Reload()
    read = RunFolder()
    for tag in run.Tags()[accumulator.TENSORS]:
        plugin = run.SummaryMetadata(tag).plugin_data.plugin_name
        points = [
            (event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in run.Tensors(tag)
        ]
        if plugin == "scalars":
            read.scalars[tag] = [(step, float(value.item())) for step, value in points]
        elif plugin == "text":
            read.texts[tag] = [(step, value.item().decode()) for step, value in points]
        elif plugin == "images":  # [width, height, encoded image...] as byte strings
            read.images[tag] = [
                (step, int(value[0]), int(value[1]), value[2]) for step, value in points
            ]
    contents = run.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = contents.get(hparams_metadata.SESSION_START_INFO_TAG)
    if start is not None:
        info = hparams_metadata.parse_session_start_info_plugin_data(start)
        read.hparams = {key: _value(value) for key, value in info.hparams.items()}
    end = contents.get(hparams_metadata.SESSION_END_INFO_TAG)
    if end is not None:
        read.status = _STATUS.get(hparams_metadata.parse_session_end_info_plugin_data(end).status)
    return read


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("kind"))


@dataclass
class HParamsRow:
    """A row of the HPARAMS tab: one session (a run)."""

    hparams: dict[str, Any]
    metrics: dict[str, float]
    """``metric tag -> the value the tab shows`` (the run's last)."""
    status: str | None


def hparams_table(log_dir: Path) -> tuple[list[str], list[str], dict[str, HParamsRow]]:
    """The HPARAMS tab of ``tensorboard --logdir log_dir``: its hparam columns, its metric
    columns, and its rows by session (run) name, from TensorBoard's own plugin backend."""
    events = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=_KEEP_EVERY_POINT)
    events.AddRunsFromDirectory(str(log_dir))
    events.Reload()
    provider = data_provider.MultiplexerDataProvider(events, str(log_dir))
    plugin = backend_context.Context(
        base_plugin.TBContext(data_provider=provider, logdir=str(log_dir), multiplexer=events)
    )
    request_context = context.RequestContext()
    experiment = get_experiment.Handler(
        request_context, plugin, "", api_pb2.GetExperimentRequest()
    ).run()
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=1000, allowed_statuses=list(api_pb2.Status.values())
    )
    for hparam in experiment.hparam_infos:
        request.col_params.add(hparam=hparam.name)
    for metric in experiment.metric_infos:
        request.col_params.add(metric=metric.name)
    groups = list_session_groups.Handler(request_context, plugin, "", request).run()
    rows = {
        session.name: HParamsRow(
            hparams={key: _value(value) for key, value in group.hparams.items()},
            metrics={metric.name.tag: metric.value for metric in session.metric_values},
            status=_STATUS.get(session.status),
        )
        for group in groups.session_groups
        for session in group.sessions
    }
    return (
        [hparam.name for hparam in experiment.hparam_infos],
        [metric.name.tag for metric in experiment.metric_infos],
        rows,
    )


_counter = itertools.count()


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    """A run_id unique in the session, readable in failure messages."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{next(_counter)}"


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in ``tmp_path``: the run log store and ``runs`` are relative to it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRACKHOOK_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def read() -> Callable[[Path], RunFolder]:
    return read_run_folder


@pytest.fixture
def table() -> Callable[[Path], tuple[list[str], list[str], dict[str, HParamsRow]]]:
    return hparams_table
