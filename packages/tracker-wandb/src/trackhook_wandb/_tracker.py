"""The W&B tracker: trackhook's hooks implemented with the ``wandb`` SDK.

``wandb`` is imported inside the hooks, which run on the tracker's delivery thread, so that
``import trackhook_wandb`` and the user's ``track_this`` calls never pay for importing it.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from trackhook import (
    FileRecord,
    MetricRecord,
    ParamRecord,
    RunInfo,
    Status,
    TrackerLimits,
    TrackhookError,
    hookimpl,
)
from trackhook_wandb._config import WandbConfig
from trackhook_wandb._files import FileLogger
from trackhook_wandb._mapping import (
    RESERVED_KEYS,
    STEP_METRIC,
    history_rows,
    wandb_project,
    wandb_run_id,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wandb.sdk.wandb_run import Run

__all__ = ["WandbRunNotOpenError", "WandbTracker"]

_FAIL_EXIT_CODE = 1


class WandbRunNotOpenError(TrackhookError):
    """The client context of a trackhook run was asked for before this process opened the run."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"the W&B run of trackhook run {run_id!r} is not open in this process; open it with "
            "trackhook.start_run() (its client context exists only inside the run)"
        )


class WandbTracker:
    """Sends trackhook runs to Weights & Biases (entry point ``wandb`` of ``trackhook.trackers``).

    Each trackhook run is its own W&B run, created with ``reinit="create_new"`` so that several
    runs (nested ``start_run`` blocks, several trackers) live side by side in one process and the
    user's own ``wandb.run`` is left alone.
    """

    config_model: ClassVar[type[WandbConfig]] = WandbConfig
    # W&B stores any key; only parameters need the step in their name to keep every step's value.
    limits: ClassVar[TrackerLimits] = TrackerLimits(
        param_key="{key}_{step}", reserved_keys=RESERVED_KEYS
    )

    def __init__(self, config: WandbConfig) -> None:
        self.config = config
        self._runs: dict[str, Run] = {}
        # run_id -> (the batch's metrics, how many of its rows W&B took) when ``run.log`` raised in
        # the middle of a batch: the core offers the same batch again, and the rows W&B already
        # has must not be logged twice.
        self._partial: dict[str, tuple[list[tuple[str, int, float]], int]] = {}
        self._lock = threading.Lock()
        self._files = FileLogger()

    @hookimpl
    def trackhook_open_run(self, run: RunInfo) -> dict[str, str]:
        """Create or continue (``resume="allow"``) the W&B run of ``run`` and describe it."""
        return self._facts(self._run_of(run))

    @hookimpl
    def trackhook_log_batch(
        self, run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
    ) -> None:
        """Parameters become config entries; metrics become history rows, one per step.

        Setting config entries again is harmless; logging a row again is not, so a batch offered
        again after a failure resumes at the row that failed.
        """
        wandb_run = self._run_of(run)
        if params:
            # allow_val_change: tracking a key again at the same step replaces its value.
            entries = {param.key: param.value for param in params}
            wandb_run.config.update(entries, allow_val_change=True)
        rows = history_rows(metrics)
        partial = self._partial.pop(run.run_id, None)
        start = partial[1] if partial is not None and partial[0] == _identity(metrics) else 0
        for index in range(start, len(rows)):
            try:
                wandb_run.log(rows[index])
            except BaseException:
                self._partial[run.run_id] = (_identity(metrics), index)
                raise

    @hookimpl
    def trackhook_log_file(self, run: RunInfo, file: FileRecord) -> None:
        """An image as media in a history row of its step, a file as the run file
        ``<key>/step_<s>/<name>`` (see ``_files``)."""
        self._files.log(self._run_of(run), file)

    @hookimpl
    def trackhook_close_run(self, run: RunInfo, status: Status) -> None:
        """Finish the W&B run: exit code 0 on SUCCESS, 1 on FAIL (W&B then shows it as failed)."""
        wandb_run = self._run_of(run)
        wandb_run.finish(exit_code=0 if status == "SUCCESS" else _FAIL_EXIT_CODE)
        with self._lock:
            self._runs.pop(run.run_id, None)

    @hookimpl
    def trackhook_client_context(self, run: RunInfo) -> AbstractContextManager[Run]:
        """The W&B ``Run`` itself: ``run.log``, ``run.summary``, artifacts land in the same run."""
        with self._lock:
            wandb_run = self._runs.get(run.run_id)
        if wandb_run is None:
            raise WandbRunNotOpenError(run.run_id)
        return nullcontext(wandb_run)

    def _run_of(self, run: RunInfo) -> Run:
        """The W&B run of ``run``, continued (``resume="allow"``) if this process has not opened it.

        Log hooks and ``trackhook_close_run`` may be the first hook of a run in this process:
        ``trackhook sync`` delivers and closes runs whose own process died (see the hook
        specifications). Only the delivery thread calls this, so no two calls race to open a run.
        """
        with self._lock:
            wandb_run = self._runs.get(run.run_id)
        if wandb_run is None:
            wandb_run = self._init(run)
            with self._lock:
                self._runs[run.run_id] = wandb_run
        return wandb_run

    def _init(self, run: RunInfo) -> Run:
        import wandb

        config = self.config
        folder = None
        if config.dir is not None and config.mode != "disabled":  # W&B would create it anyway
            # W&B wants an absolute, existing folder and falls back to a temporary one otherwise.
            folder = Path(config.dir).expanduser().absolute()
            folder.mkdir(parents=True, exist_ok=True)
        wandb_run = wandb.init(
            project=wandb_project(run.tag, config.project),
            entity=config.entity,
            name=run.run_id,
            id=wandb_run_id(run.run_id),
            resume="allow",
            reinit="create_new",
            mode=config.mode,
            dir=folder,
            group=config.group,
            job_type=config.job_type,
            tags=config.tags or None,
            settings=wandb.Settings(**config.wandb_settings()),
        )
        wandb_run.define_metric(STEP_METRIC)
        wandb_run.define_metric("*", step_metric=STEP_METRIC)
        return wandb_run

    @staticmethod
    def _facts(wandb_run: Run) -> dict[str, str]:
        settings = wandb_run.settings
        facts = {"run_id": wandb_run.id, "mode": str(settings.mode)}
        if settings.project:
            facts["project"] = settings.project
        if settings.entity:
            facts["entity"] = settings.entity
        if settings.mode != "disabled":
            facts["run_dir"] = str(settings.sync_dir)
        url = wandb_run.url if settings.mode == "online" else None
        if url:
            facts["url"] = url
        return facts


def _identity(metrics: Sequence[MetricRecord]) -> list[tuple[str, int, float]]:
    """What tells a batch offered again from a new one; computed only after a failure."""
    return [(metric.key, metric.step, metric.timestamp) for metric in metrics]
