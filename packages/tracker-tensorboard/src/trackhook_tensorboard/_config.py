"""The ``config:`` block of a ``type: tensorboard`` tracker, validated before any run opens."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TensorBoardConfig"]


class TensorBoardConfig(BaseModel):
    """Where the event files of trackhook runs go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_dir: str = Field(
        default="runs",
        min_length=1,
        description="The folder TensorBoard is pointed at (`tensorboard --logdir runs`); a run "
        "writes its event files under <log_dir>/<tag>/<run_id>/. Relative to the working "
        "directory; created if missing.",
    )
    default_tag: str = Field(
        default="default",
        min_length=1,
        description="The folder under log_dir of runs started without a tag.",
    )
