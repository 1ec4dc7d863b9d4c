"""trackhook's records as TensorBoard ``Event`` protos, built with TensorBoard's own protos.

- a metric is a scalar (``simple_value``, TensorBoard's 32-bit float, as ``add_scalar`` of
  torch and tensorboardX writes it) at its step, with the time ``track_this`` received it;
- a parameter is a text summary at its step (the TEXT tab), under its stored key ``key_s``, the
  name of its hparam too: a key tracked as a number at one step and as text at another (``lr=None``
  then ``lr=0.1``) must not give one tag points of two kinds, which TensorBoard cannot show;
- an image (``trackhook.Image``) is an image summary at its step (the IMAGES tab, with a step
  slider): the PNG or JPEG as it was tracked, with its size and colour space read from its header;
- at close, the run's parameters become one HPARAMS session (``session_start_info`` with every
  parameter as an hparam ``key_s``, ``session_end_info`` with the status), written into a session
  file of its own that TensorBoard reads before the run's other files (``_sessions``). No
  experiment summary is written: without one, TensorBoard's HPARAMS plugin builds the table from
  every session in the log folder, with every scalar of those runs as a metric column, so runs
  with different parameters or metrics are compared side by side. (An experiment summary written
  by each run would make TensorBoard pick one run's, arbitrarily, and hide what the others
  declare.)

This module imports TensorBoard, so only the delivery side (the tracker's hooks) imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.text.summary_v2 import text_pb

from trackhook import FileRecord, MetricRecord, ParamRecord, ParamValue, Status, ValuesRejected
from trackhook.records import param_text
from trackhook_tensorboard._images import image_header

__all__ = [
    "image_event",
    "scalar_event",
    "scalar_events",
    "session_events",
    "text_event",
    "text_events",
]

_STATUS = {"SUCCESS": api_pb2.STATUS_SUCCESS, "FAIL": api_pb2.STATUS_FAILURE}


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> Event:
    """One scalar point; NaN and infinities are written as they are (TensorBoard shows them)."""
    event = Event(wall_time=wall_time, step=step)
    event.summary.value.add(tag=tag, simple_value=value)  # faster than nested constructors
    return event


def scalar_events(metrics: Iterable[MetricRecord]) -> list[Event]:
    return [scalar_event(m.key, m.value, m.step, m.timestamp) for m in metrics]


def text_event(tag: str, text: str, step: int, wall_time: float) -> Event:
    """One text point (the TEXT tab renders it as Markdown)."""
    return Event(wall_time=wall_time, step=step, summary=text_pb(tag, text))


def text_events(params: Iterable[ParamRecord]) -> list[Event]:
    return [text_event(p.key, p.text, p.step, p.timestamp) for p in params]


def image_event(file: FileRecord) -> Event:
    """One image point: the tracked PNG or JPEG, unchanged, at its step.

    :raises trackhook.ValuesRejected: when the content is neither a PNG nor a JPEG.
    """
    encoded = file.path.read_bytes()
    header = image_header(encoded)
    if header is None:
        raise ValuesRejected(f"{file.name!r} is neither a PNG nor a JPEG, TensorBoard's images")
    image = Summary.Image(
        height=header.height,
        width=header.width,
        colorspace=header.colorspace,
        encoded_image_string=encoded,
    )
    event = Event(wall_time=file.timestamp, step=file.step)
    event.summary.value.add(tag=file.key, image=image)
    return event


def session_events(
    hparams: Mapping[str, ParamValue],
    started_at: float,
    status: Status,
    ended_at: float,
    *,
    earlier: plugin_data_pb2.SessionStartInfo | None = None,
    step: int = 0,
) -> Sequence[Event]:
    """The HPARAMS session of a run: its hparams, when it started, how and when it ended.

    ``earlier``, the session start of the run's previous close, gives the hparams this close did
    not track again; a value tracked again replaces its earlier one.
    """
    start = plugin_data_pb2.SessionStartInfo()
    if earlier is not None:
        start.CopyFrom(earlier)
    start.start_time_secs = started_at
    for key, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        else:  # str, None, list: HPARAMS takes numbers, strings and bools only
            start.hparams[key].string_value = param_text(value)
    end = plugin_data_pb2.SessionEndInfo(status=_STATUS[status], end_time_secs=ended_at)
    return [
        _hparams_event(
            hparams_metadata.SESSION_START_INFO_TAG, started_at, step, session_start_info=start
        ),
        _hparams_event(hparams_metadata.SESSION_END_INFO_TAG, ended_at, step, session_end_info=end),
    ]


def _hparams_event(tag: str, wall_time: float, step: int, **data: object) -> Event:
    plugin_data = plugin_data_pb2.HParamsPluginData(**data)
    value = Summary.Value(
        tag=tag,
        metadata=hparams_metadata.create_summary_metadata(plugin_data),
        tensor=hparams_metadata.NULL_TENSOR,
    )
    return Event(wall_time=wall_time, step=step, summary=Summary(value=[value]))
