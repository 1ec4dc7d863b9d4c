"""The settings of the ``mlflow`` tracker: the ``config:`` mapping of its configuration entry.

Validated by the core with ``MlflowConfig``; an unknown key is an error, so a misspelt setting is
reported instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MlflowConfig"]


class MlflowConfig(BaseModel):
    """Where the MLflow runs go and how hard to try to reach the tracking server."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    tracking_uri: str | None = Field(
        default=None,
        alias="server_url",
        description="An MLflow tracking URI: http(s)://host:port, sqlite:///path.db, a folder "
        "(file:///path). Default: what MLflow itself would use ($MLFLOW_TRACKING_URI, else "
        "MLflow's default store).",
    )
    default_experiment: str = Field(
        default="Default",
        min_length=1,
        description="The experiment of runs whose tag is empty.",
    )
    request_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to wait for one HTTP response from a tracking server.",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="HTTP retries of one request inside MLflow's client. trackhook retries the "
        "whole batch later anyway, so this stays small: MLflow's own default retries for minutes.",
    )
    retry_backoff: float = Field(
        default=0.5,
        ge=0,
        le=120,
        description="Backoff factor, in seconds, between those HTTP retries.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags set on every run this tracker creates or continues.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_uri(cls, data: Any) -> Any:
        # Both names at once would otherwise be reported as "tracking_uri: extra input", which
        # points at the documented name.
        if isinstance(data, dict) and "tracking_uri" in data and "server_url" in data:
            raise ValueError("give tracking_uri or its alias server_url, not both")
        return data
