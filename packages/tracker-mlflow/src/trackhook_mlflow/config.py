"""The settings of the ``mlflow`` tracker: the ``config:`` mapping of its configuration entry.

Validated by the core with ``MlflowConfig``; an unknown key is an error, so a misspelt setting is
reported instead of being silently ignored.
"""

from __future__ import annotations

import urllib.parse
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trackhook.errors import did_you_mean

__all__ = ["MlflowConfig"]

# The tracking-store schemes MLflow itself registers (its ``_register_tracking_stores``); plugins
# add theirs under the entry-point group ``mlflow.tracking_store``.
MLFLOW_STORE_SCHEMES = (
    "file",
    "http",
    "https",
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
)


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

    @field_validator("tracking_uri")
    @classmethod
    def _a_scheme_mlflow_knows(cls, uri: str | None) -> str | None:
        # A misspelt scheme (`htp://`) would otherwise fail on every retry for the whole run, with
        # an MLflow message about the model registry.
        scheme = urllib.parse.urlparse(uri or "").scheme.lower()
        if len(scheme) <= 1:  # a path, or a Windows drive letter
            return uri
        known = [*MLFLOW_STORE_SCHEMES, *_plugin_schemes()]
        if scheme.split("+")[0] in known:  # postgresql+psycopg2: a database driver
            return uri
        raise ValueError(
            f"MLflow has no tracking store for the scheme {scheme!r} "
            f"({did_you_mean(scheme, known)}it knows: {', '.join(known)}; a plain path is a "
            "local folder)"
        )

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_uri(cls, data: Any) -> Any:
        # Both names at once would otherwise be reported as "tracking_uri: extra input", which
        # points at the documented name.
        if isinstance(data, dict) and "tracking_uri" in data and "server_url" in data:
            raise ValueError("give tracking_uri or its alias server_url, not both")
        return data


def _plugin_schemes() -> list[str]:
    """Schemes of installed MLflow tracking-store plugins, read without importing MLflow."""
    return [point.name for point in entry_points(group="mlflow.tracking_store")]
