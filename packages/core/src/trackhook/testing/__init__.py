"""Helpers for testing code that tracks, and for testing tracker plugins.

``RecordingTracker`` keeps every hook call it receives. The pytest plugin (registered through the
``pytest11`` entry point, so it is active wherever trackhook is installed) provides the
``trackhook_recorder`` fixture, which routes a test's tracking to a fresh ``RecordingTracker``::

    def test_training_tracks_the_loss(trackhook_recorder):
        train(epochs=2)                        # calls trackhook.track_this(step=..., loss=...)
        assert trackhook_recorder.metrics("loss") == {0: 0.9, 1: 0.5}

A plugin author checks a tracker against everything trackhook promises with the conformance suite,
``trackhook.testing.conformance.TrackerConformance`` (a base class of pytest tests).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackhook._markers import hookimpl
from trackhook.records import FileKind, FileRecord, MetricRecord, ParamRecord, RunInfo, Status

__all__ = [
    "HookCall",
    "PerValueRecordingTracker",
    "RecordingTracker",
    "file_record",
    "noise_png",
    "recording",
    "rgb_pixels",
    "tiny_png",
]


def file_record(
    path: Path, key: str, step: int, kind: FileKind, name: str | None = None
) -> FileRecord:
    """The ``FileRecord`` the core would hand a tracker for the file at ``path``: for calling a
    tracker's ``trackhook_log_file`` directly in its tests."""
    content = path.read_bytes()
    return FileRecord(
        key=key,
        step=step,
        path=path,
        name=name or path.name,
        kind=kind,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        timestamp=time.time(),
    )


def noise_png(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """Write an RGB PNG of random pixels (each ``seed`` its own) to ``path``, for tests that tell
    images apart by their pixels; needs numpy and pillow, imported only here."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def rgb_pixels(path: Path) -> Any:
    """The pixels of the image at ``path`` as an RGB numpy array (numpy and pillow needed)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def tiny_png() -> bytes:
    """A valid 2x2 red PNG, made without an image library (for ``trackhook.Image`` in tests)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8 bits, RGB
    rows = b"".join(b"\x00" + bytes([255, 0, 0]) * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class HookCall:
    """One hook call: its name and its arguments."""

    name: str
    kwargs: dict[str, Any]


class _Recorder:
    """Keeps every hook call, in order, and reads them back for assertions."""

    def __init__(self, config: object = None) -> None:
        del config
        self.calls: list[HookCall] = []
        self._lock = threading.Lock()

    def _keep(self, name: str, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append(HookCall(name, kwargs))

    @hookimpl
    def trackhook_open_run(self, run: RunInfo) -> None:
        self._keep("trackhook_open_run", run=run)

    @hookimpl
    def trackhook_close_run(self, run: RunInfo, status: Status) -> None:
        self._keep("trackhook_close_run", run=run, status=status)

    @hookimpl
    def trackhook_client_context(self, run: RunInfo) -> Any:
        self._keep("trackhook_client_context", run=run)
        return _yielding(self)

    @hookimpl
    def trackhook_log_file(self, run: RunInfo, file: FileRecord) -> None:
        # the content, read now: the held copy is the run's, and a test reads it after the run
        self._keep("trackhook_log_file", run=run, file=file, content=file.path.read_bytes())

    # -- reading what was recorded ---------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the hooks called, in order."""
        with self._lock:
            return [call.name for call in self.calls]

    def metric_records(self) -> list[MetricRecord]:
        with self._lock:
            return [record for call in self.calls for record in call.kwargs.get("metrics", [])] + [
                MetricRecord(c.kwargs["key"], c.kwargs["value"], c.kwargs["step"], 0.0)
                for c in self.calls
                if c.name == "trackhook_log_metric"
            ]

    def param_records(self) -> list[ParamRecord]:
        with self._lock:
            return [record for call in self.calls for record in call.kwargs.get("params", [])] + [
                ParamRecord(c.kwargs["key"], c.kwargs["value"], c.kwargs["step"], 0.0)
                for c in self.calls
                if c.name == "trackhook_log_param"
            ]

    def metrics(self, key: str) -> dict[int, float]:
        """``step -> value`` of the metric ``key``."""
        return {record.step: record.value for record in self.metric_records() if record.key == key}

    def params(self) -> dict[str, Any]:
        """``key -> value`` of every parameter received (keys as the tracker received them)."""
        return {record.key: record.value for record in self.param_records()}

    def file_records(self) -> list[FileRecord]:
        """Every file and image received, in order."""
        with self._lock:
            return [c.kwargs["file"] for c in self.calls if c.name == "trackhook_log_file"]

    def files(self) -> dict[tuple[str, int], bytes]:
        """``(key, step) -> content`` of every file and image received, read when received."""
        with self._lock:
            return {
                (c.kwargs["file"].key, c.kwargs["file"].step): c.kwargs["content"]
                for c in self.calls
                if c.name == "trackhook_log_file"
            }

    def statuses(self) -> list[Status]:
        with self._lock:
            return [c.kwargs["status"] for c in self.calls if c.name == "trackhook_close_run"]


class RecordingTracker(_Recorder):
    """A tracker that keeps every hook call; it receives values in batches."""

    @hookimpl
    def trackhook_log_batch(
        self, run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
    ) -> None:
        self._keep("trackhook_log_batch", run=run, metrics=list(metrics), params=list(params))


class PerValueRecordingTracker(_Recorder):
    """A tracker that keeps every hook call; like a minimal plugin, it takes one call per value."""

    @hookimpl
    def trackhook_log_metric(self, run: RunInfo, key: str, value: float, step: int) -> None:
        self._keep("trackhook_log_metric", run=run, key=key, value=value, step=step)

    @hookimpl
    def trackhook_log_param(self, run: RunInfo, key: str, value: Any, step: int) -> None:
        self._keep("trackhook_log_param", run=run, key=key, value=value, step=step)


@contextmanager
def _yielding(value: Any) -> Iterator[Any]:
    yield value


@contextmanager
def recording(tracker: _Recorder | None = None, name: str = "recording") -> Iterator[Any]:
    """Make the tracker type ``name`` build ``tracker`` (a new ``RecordingTracker`` by default).

    Use it with a configuration that names the type: ``{"experiment_tracker": {"type": name}}``.
    """
    from trackhook.registry import registered

    recorder = tracker if tracker is not None else RecordingTracker()
    with registered(name, lambda *args: recorder):
        yield recorder
