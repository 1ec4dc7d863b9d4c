"""``TensorBoardTracker``: trackhook's hooks written as TensorBoard event files.

Each trackhook run is a TensorBoard run: the folder ``<log_dir>/<tag>/<run_id>/``. Every process
that delivers values of the run writes an event file of its own there; TensorBoard reads every
file of a folder as one run, so the same run_id continues the same run.

TensorBoard is imported inside the hooks, on the delivery thread, so that
``import trackhook_tensorboard`` stays cheap and a user's ``track_this`` never waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from trackhook import (
    FileRecord,
    MetricRecord,
    ParamRecord,
    ParamValue,
    RunInfo,
    Status,
    TrackerLimits,
    hookimpl,
)
from trackhook_tensorboard._config import TensorBoardConfig
from trackhook_tensorboard._folders import run_folder

if TYPE_CHECKING:
    from trackhook_tensorboard._writer import RunWriter

__all__ = ["LIMITS", "RUN_ID_HPARAM", "TensorBoardTracker"]

RUN_ID_HPARAM = "trackhook.run_id"
"""An hparam of every run's HPARAMS session: TensorBoard lists sessions only when they have an
hparam, and a run that tracked numbers only (all of them scalars) is a row of the tab too. A
tracked parameter never has this name: its stored name ends with ``_<step>``."""

# TensorBoard stores any tag; a parameter keeps its step in its hparam name (`spam_0`), so that
# every step's value is a column of its own in the HPARAMS tab. The HPARAMS plugin's own tags are
# renamed by the core's rule rather than taken for the plugin's data.
LIMITS = TrackerLimits(
    param_key="{key}_{step}",
    file_kinds=frozenset({"image"}),
    reserved_keys=frozenset(
        {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    ),
)


@dataclass
class _OpenRun:
    """What the tracker holds for one run open in this process."""

    writer: RunWriter
    hparams: dict[str, ParamValue] = field(default_factory=dict)
    """The parameters delivered in this process, written as the HPARAMS session at close."""


class TensorBoardTracker:
    """Writes trackhook runs as TensorBoard event files (entry point ``tensorboard``)."""

    config_model: ClassVar[type[TensorBoardConfig]] = TensorBoardConfig
    limits: ClassVar[TrackerLimits] = LIMITS

    def __init__(self, config: TensorBoardConfig) -> None:
        self.config = config
        self._runs: dict[str, _OpenRun] = {}
        # The delivery thread opens runs; the user's thread may ask for the client context.
        self._lock = threading.Lock()

    @hookimpl
    def trackhook_open_run(self, run: RunInfo) -> Mapping[str, str]:
        """Start this process's event file in the run's folder (created, or continued)."""
        return {"log_dir": str(self._state(run).writer.log_dir)}

    @hookimpl
    def trackhook_log_batch(
        self, run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
    ) -> None:
        """Scalars and texts at their steps, in one write; the params are kept for HPARAMS."""
        from trackhook_tensorboard._events import scalar_events, text_events

        state = self._state(run)
        state.writer.add_events([*scalar_events(metrics), *text_events(params)])
        state.hparams.update((param.key, param.value) for param in params)

    @hookimpl
    def trackhook_log_file(self, run: RunInfo, file: FileRecord) -> None:
        """An image as an image summary at its step (IMAGES tab).

        TensorBoard has no place for other files: ``LIMITS.file_kinds`` takes images only, so the
        core never offers the others here and counts them ``skipped``; the run store keeps them
        (``trackhook show`` lists them). See the README's "Files and images".
        """
        from trackhook_tensorboard._events import image_event

        self._state(run).writer.add_events([image_event(file)])

    @hookimpl
    def trackhook_close_run(self, run: RunInfo, status: Status) -> None:
        """Write the run's HPARAMS session, its status included, and close the event file.

        The session goes into a session file of its own, which TensorBoard reads before the
        run's earlier ones: a continued run shows its latest close, with the parameters of every
        close (see ``_sessions``)."""
        from trackhook_tensorboard._sessions import write_session

        state = self._state(run)
        started_at = run.started_at or time.time()
        hparams = {RUN_ID_HPARAM: run.run_id, **state.hparams}
        write_session(state.writer.log_dir, hparams, started_at, status, time.time())
        state.writer.close()
        with self._lock:
            self._runs.pop(run.run_id, None)

    @hookimpl
    def trackhook_client_context(self, run: RunInfo) -> AbstractContextManager[RunWriter]:
        """The run's ``RunWriter``: summaries added with it land in the same TensorBoard run."""
        return nullcontext(self._state(run).writer)

    def _state(self, run: RunInfo) -> _OpenRun:
        """The run as open in this process; opened here when a hook comes first (``trackhook
        sync`` closing the run of a process that died)."""
        from trackhook_tensorboard._writer import RunWriter

        with self._lock:
            state = self._runs.get(run.run_id)
            if state is None:
                folder = run_folder(self.config.log_dir, run, self.config.default_tag)
                state = self._runs[run.run_id] = _OpenRun(RunWriter(folder))
            return state
