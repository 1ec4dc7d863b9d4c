"""The ``config:`` block of a ``type: wandb`` tracker, validated before any run opens.

Credentials are deliberately not a field: the core records the validated config in the run log, so
an API key here would end up on disk. W&B reads its key from ``WANDB_API_KEY`` or ``wandb login``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["WandbConfig"]

_CREDENTIAL_SETTINGS = frozenset({"api_key", "identity_token_file", "credentials_file"})


class WandbConfig(BaseModel):
    """Where W&B runs go and what W&B records besides the tracked values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = Field(
        default=None,
        description="The W&B project when the run's tag is empty; None leaves it to W&B "
        "(WANDB_PROJECT, else 'uncategorized').",
    )
    entity: str | None = Field(
        default=None, description="The W&B user or team; None means your default entity."
    )
    mode: Literal["online", "offline", "disabled"] | None = Field(
        default=None,
        description="online: sync while running; offline: write run files only (push them later "
        "with `wandb sync`); disabled: record nothing. None leaves it to W&B (WANDB_MODE, "
        "else online).",
    )
    dir: str | None = Field(
        default=None,
        description="Folder under which W&B writes its 'wandb/' run folders; created if missing. "
        "None: W&B's default (WANDB_DIR, else the working directory).",
    )
    group: str | None = Field(default=None, description="W&B run group.")
    job_type: str | None = Field(default=None, description="W&B job type.")
    tags: list[str] = Field(default_factory=list, description="W&B run tags.")
    system_metrics: bool = Field(
        default=False,
        description="Sample CPU/GPU/memory usage and probe the machine (cloud metadata "
        "endpoints included). Off by default: it is network traffic and load that the tracked "
        "values do not need.",
    )
    console: Literal["off", "auto", "wrap", "redirect"] = Field(
        default="off",
        description="Capture stdout/stderr into the run's logs ('off' by default: trackhook "
        "tracks values, not output).",
    )
    save_code: bool = Field(default=False, description="Save the main script in the run.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other wandb.Settings field, passed as given (e.g. base_url, "
        "init_timeout). Credentials are refused here.",
    )

    @field_validator("settings")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        given = sorted(_CREDENTIAL_SETTINGS.intersection(value))
        if given:
            raise ValueError(
                f"{', '.join(given)} must not be in the trackhook configuration (it is recorded "
                "in the run log); set WANDB_API_KEY or run `wandb login` instead"
            )
        return value

    def wandb_settings(self) -> dict[str, Any]:
        """The ``wandb.Settings`` fields this config implies, the free-form ``settings`` last."""
        quiet = not self.system_metrics
        derived: dict[str, Any] = {
            "x_disable_stats": quiet,
            "x_disable_machine_info": quiet,
            "console": self.console,
            "save_code": self.save_code,
        }
        return {**derived, **self.settings}
