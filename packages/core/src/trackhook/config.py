"""Where the configuration comes from and what it may say.

Looked for in this order, first found wins: the ``config=`` argument (a path, a dict or a
``TrackhookConfig``), the file named by ``TRACKHOOK_CONFIG``, ``trackhook.yaml`` (or
``trackhook.yml``) in the working directory, ``[tool.trackhook]`` in ``pyproject.toml``. None
found: the built-in ``do-nothing`` tracker, and the run log still records everything.

This module imports pydantic and PyYAML; the core imports it only when a run opens, so that
``import trackhook`` stays light.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trackhook.errors import ConfigError, did_you_mean
from trackhook.variables import CONFIG_VARIABLE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "ConfigSource",
    "DeliverySettings",
    "LoadedConfig",
    "TrackerSettings",
    "TrackhookConfig",
    "describe_validation_error",
    "load_config",
]

CONFIG_FILE = "trackhook.yaml"
CONFIG_FILES = (CONFIG_FILE, "trackhook.yml")
"""The names looked for in the working directory: both spellings of YAML's extension are common."""
PYPROJECT = "pyproject.toml"

_log = logging.getLogger("trackhook")

ConfigSource = Union[str, os.PathLike[str], Mapping[str, Any], "TrackhookConfig", None]


class TrackerSettings(BaseModel):
    """One tracker to send values to."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The tracker's entry-point name in 'trackhook.trackers'.")
    name: str | None = Field(
        default=None,
        description="A name for this tracker (defaults to its type); needed when two trackers "
        "share a type.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Validated by the tracker's own config_model."
    )
    on_error: Literal["warn", "raise"] = Field(
        default="warn",
        description="warn: keep the run going, retry, keep undelivered values for "
        "`trackhook sync`; raise: a failure is raised in the user's code.",
    )

    @property
    def display_name(self) -> str:
        return self.name or self.type


class DeliverySettings(BaseModel):
    """How values travel from the spool to the trackers."""

    model_config = ConfigDict(extra="forbid")

    interval: float = Field(
        default=0.1, gt=0, le=1.0, description="Seconds between a delivery thread's passes."
    )
    flush_timeout: float = Field(
        default=10.0, ge=0, description="Seconds a run's close waits for each tracker."
    )
    max_backoff: float = Field(
        default=30.0, gt=0, description="Longest wait, in seconds, between retries."
    )
    patience: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a close (or a sync) waits beyond its timeout for a tracker that is "
        "still opening the run (a cold start: importing its library, creating its database) or "
        "has accepted values in the last 5 seconds; a tracker that fails or hangs gets none.",
    )


class TrackhookConfig(BaseModel):
    """The whole configuration (a ``trackhook.yaml`` file or ``[tool.trackhook]``)."""

    model_config = ConfigDict(extra="forbid")

    experiment_tracker: TrackerSettings | None = Field(
        default=None, description="The one tracker to send values to."
    )
    experiment_trackers: list[TrackerSettings] | None = Field(
        default=None, description="Several trackers, each receiving every value (fan-out)."
    )
    run_log_store: str = Field(default=".run_log_store", description="Folder of the run logs.")
    ranks: Literal["zero", "all"] = Field(
        default="zero",
        description="In distributed training: 'zero' sends only rank 0's values to the trackers, "
        "'all' sends every rank's.",
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings,
        description="How values travel from the spool to the trackers: interval, flush_timeout, "
        "max_backoff, patience.",
    )

    @model_validator(mode="after")
    def _one_way_to_name_trackers(self) -> TrackhookConfig:
        if self.experiment_tracker is not None and self.experiment_trackers is not None:
            raise ValueError(
                "give either experiment_tracker or experiment_trackers (a list), not both"
            )
        names = [settings.display_name for settings in self.trackers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"two trackers are named {name!r}: give each of them a distinct `name:`"
                )
        return self

    @property
    def trackers(self) -> list[TrackerSettings]:
        if self.experiment_trackers is not None:
            return list(self.experiment_trackers)
        if self.experiment_tracker is not None:
            return [self.experiment_tracker]
        return [TrackerSettings(type="do-nothing")]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and a human description of where it came from."""

    config: TrackhookConfig
    source: str
    path: Path | None = None
    """The file it was read from, if any: exported to child processes as TRACKHOOK_CONFIG."""
    found: bool = True
    """Whether a configuration was given or found; False for the default, which names no
    tracker (``source`` says the same in words, for people)."""


def load_config(source: ConfigSource = None, cwd: Path | None = None) -> LoadedConfig:
    """Find and validate the configuration, or raise ``ConfigError`` naming the source.

    Where it came from is logged at debug level (logger ``trackhook``): a configuration that is
    not the one the user meant is otherwise found only by its effects.
    """
    loaded = _find_and_validate(source, cwd or Path.cwd())
    _log.debug("trackhook configuration: %s", loaded.source)
    return loaded


def _find_and_validate(source: ConfigSource, folder: Path) -> LoadedConfig:
    if isinstance(source, TrackhookConfig):
        return LoadedConfig(source, "the config= argument")
    if isinstance(source, Mapping):
        return _validate(dict(source), "the config= argument")
    if source is not None:
        return _from_file(Path(source), "the config= argument")
    from_env = os.environ.get(CONFIG_VARIABLE)
    if from_env:
        return _from_file(Path(from_env), f"${CONFIG_VARIABLE}")
    config_file = _config_file_in(folder)
    if config_file is not None:
        return _from_file(config_file, "the working directory")
    if (folder / PYPROJECT).is_file():
        table = _read_pyproject(folder / PYPROJECT)
        if table is not None:
            return _validate(table, f"{folder / PYPROJECT} [tool.trackhook]", folder / PYPROJECT)
    return LoadedConfig(TrackhookConfig(), "the default (no configuration found)", found=False)


def _config_file_in(folder: Path) -> Path | None:
    """``trackhook.yaml`` or ``trackhook.yml`` in ``folder``; both at once is an error.

    Which of two files wins would be a rule to remember, and the loser silently ignored.
    """
    found = [folder / name for name in CONFIG_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise ConfigError(
            f"{folder} holds both {' and '.join(path.name for path in found)}: keep one of them "
            "(trackhook would read only one)"
        )
    return found[0] if found else None


def _from_file(path: Path, how: str) -> LoadedConfig:
    if not path.is_file():
        raise ConfigError(f"{path} (named by {how}): no such file; create it or fix the path")
    if path.name == PYPROJECT or path.suffix == ".toml":
        table = _read_pyproject(path)
        if table is None:
            raise ConfigError(f"{path}: has no [tool.trackhook] table")
        return _validate(table, f"{path} [tool.trackhook]", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: is not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a mapping at the top, got {type(data).__name__}")
    return _validate(data, str(path), path)


def _read_pyproject(path: Path) -> dict[str, Any] | None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: is not valid TOML: {error}") from None
    table = document.get("tool", {}).get("trackhook")
    return table if isinstance(table, dict) else None


def _validate(data: dict[str, Any], source: str, path: Path | None = None) -> LoadedConfig:
    try:
        return LoadedConfig(TrackhookConfig.model_validate(data), source, path)
    except ValidationError as error:
        raise ConfigError(
            f"{source}: {describe_validation_error(error, TrackhookConfig)}"
        ) from None


def describe_validation_error(error: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted field and pydantic's reason.

    An unknown field of ``model`` also gets the closest known field and the list of them: a typo
    is the usual cause, and the list saves a trip to the docs.
    """
    problems = []
    for problem in error.errors():
        location = problem["loc"]
        field = ".".join(str(part) for part in location) or "(top level)"
        described = f"field {field!r}: {problem['msg']}"
        owner = _model_at(model, location[:-1]) if model is not None else None
        if problem["type"] == "extra_forbidden" and owner is not None and location:
            described += _known_fields(str(location[-1]), owner)
        elif owner is not None and location:
            described += _singular_or_plural(str(location[-1]), problem.get("input"), owner)
        problems.append(described)
    return "; ".join(problems)


def _singular_or_plural(field: str, given: object, model: type[BaseModel]) -> str:
    """A hint when a list was given to ``x`` and the model has ``xs`` (or one item to ``xs``).

    ``experiment_tracker:`` holding a list is a common slip, and pydantic's "should be a valid
    dictionary" does not say that the plural field exists.
    """
    fields = model.model_fields
    if isinstance(given, list) and f"{field}s" in fields:
        return f" (for a list, write {field}s: in the plural)"
    if isinstance(given, dict) and field.endswith("s") and field[:-1] in fields:
        return f" (for one item, write {field[:-1]}: in the singular; for several, a list)"
    return ""


def _model_at(model: type[BaseModel], location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the nested field at ``location`` (``("delivery",)``), if it is one."""
    for part in location:
        if isinstance(part, int):
            continue  # an item of a list of models
        fields = model.model_fields
        info = fields.get(part) or next(
            (info for info in fields.values() if info.alias == part), None
        )
        nested = _only_model_in(info.annotation) if info is not None else None
        if nested is None:
            return None
        model = nested
    return model


def _only_model_in(annotation: Any) -> type[BaseModel] | None:
    """``M`` for ``M``, ``M | None``, ``list[M]`` or ``M | list[M]``; else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = {model for arg in get_args(annotation) if (model := _only_model_in(arg)) is not None}
    return found.pop() if len(found) == 1 else None


def _known_fields(unknown: str, model: type[BaseModel]) -> str:
    known = list(
        dict.fromkeys(
            written
            for name, info in model.model_fields.items()
            for written in (name, info.alias or name)
        )
    )
    return f" ({did_you_mean(unknown, known)}the fields are: {', '.join(known)})"
