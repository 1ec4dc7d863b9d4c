"""The typed records that flow from the core to trackers through the hooks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "FileKind",
    "FileRecord",
    "MetricRecord",
    "ParamRecord",
    "ParamValue",
    "RunInfo",
    "Status",
    "param_text",
]

Status = Literal["SUCCESS", "FAIL"]
"""How a run ended: ``SUCCESS``, or ``FAIL`` when the ``start_run`` block raised."""

ParamValue = str | bool | int | float | None | list[object]
"""What becomes a parameter in a tracker: a non-numeric value of ``track_this``, or any value of
``track_params`` (numbers included)."""


@dataclass(frozen=True)
class RunInfo:
    """The run that a hook call belongs to.

    ``run_id`` names the run in the tracker; ``tag`` names its experiment (or project), and may be
    empty, in which case a tracker uses its configured default.
    """

    run_id: str
    tag: str
    started_at: float = 0.0
    """Unix time at which the run was opened by its owning process."""


# Records are plain slotted dataclasses, not frozen ones: the delivery thread builds one per value,
# and a frozen dataclass's __init__ costs several times more. Each tracker gets records of its own.
@dataclass(slots=True)
class MetricRecord:
    """A numeric value tracked at a step, with the Unix time at which ``track_this`` received it."""

    key: str
    value: float
    step: int
    timestamp: float


@dataclass(slots=True)
class ParamRecord:
    """A non-numeric value tracked at a step, or any value tracked by ``track_params``.

    ``key`` is the key as the tracker should store it: for trackers that declare
    ``TrackerLimits.param_key`` (MLflow, W&B: ``"{key}_{step}"``) the step is already part of it.
    ``full_value`` is set when ``value`` was truncated to fit the tracker's limit, so that the
    tracker can keep the whole value elsewhere (an artifact, a file).
    """

    key: str
    value: ParamValue
    step: int
    timestamp: float
    full_value: str | None = field(default=None)

    @property
    def text(self) -> str:
        """The value as text, for trackers that store parameters as strings."""
        return param_text(self.value)


FileKind = Literal["file", "image"]
"""What a tracked file is: ``"image"`` for ``trackhook.Image`` (a PNG, or the JPEG given),
``"file"`` for ``trackhook.File``."""


@dataclass(slots=True)
class FileRecord:
    """A file or image tracked at a step (``trackhook.File`` / ``trackhook.Image``).

    ``path`` is a local file in the run store that holds the content as it was when ``track_this``
    returned: the original may have changed or gone since. Read it, copy it or upload it; never
    move, change or delete it (it is the run's record, and other trackers read it too).
    """

    key: str
    """The flattened key (``eval.confusion``), as for a metric."""
    step: int
    path: Path
    name: str
    """The file name to show and to store it under: the original's name (``epoch-5.pt``), or
    ``<key>.png`` for an image made from data."""
    kind: FileKind
    sha256: str
    """The hex SHA-256 of the content."""
    size: int
    """The content's size in bytes."""
    timestamp: float
    """The Unix time at which ``track_this`` received it."""


def param_text(value: ParamValue) -> str:
    """A parameter as text: strings as they are, lists as JSON, booleans as ``True``/``False``,
    numbers as Python writes them (``0.001``, ``1e-05``, ``nan``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return json.dumps(value, allow_nan=True)
    return str(value)
