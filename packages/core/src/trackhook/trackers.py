"""Building the configured trackers and calling their hooks through a typed facade.

Every tracker instance is registered with one ``pluggy.PluginManager("trackhook")``; each tracker
gets a ``TrackerHooks`` facade whose callers reach that tracker alone (pluggy's
``subset_hook_caller``), because in one plain hook call the first exception would stop every other
tracker.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from trackhook import hookspecs
from trackhook._markers import PROJECT_NAME
from trackhook.config import LoadedConfig, TrackerSettings, describe_validation_error
from trackhook.errors import ConfigError, TrackerLoadError, TrackhookWarning
from trackhook.limits import TrackerLimits
from trackhook.records import MetricRecord, ParamRecord, RunInfo, Status
from trackhook.redaction import redact, redact_text
from trackhook.registry import TrackerFactory, load_tracker_class

__all__ = ["LoadedTracker", "TrackerHooks", "build_trackers"]


class TrackerHooks:
    """One method per hook, reaching one tracker only."""

    def __init__(self, manager: pluggy.PluginManager, plugin: object) -> None:
        others = [other for other in manager.get_plugins() if other is not plugin]
        hook = manager.hook
        self._open = manager.subset_hook_caller("trackhook_open_run", others)
        self._metric = manager.subset_hook_caller("trackhook_log_metric", others)
        self._param = manager.subset_hook_caller("trackhook_log_param", others)
        self._batch = manager.subset_hook_caller("trackhook_log_batch", others)
        self._close = manager.subset_hook_caller("trackhook_close_run", others)
        self._context = manager.subset_hook_caller("trackhook_client_context", others)
        implemented = {
            name
            for name in ("trackhook_log_batch", "trackhook_log_metric", "trackhook_log_param")
            if any(impl.plugin is plugin for impl in getattr(hook, name).get_hookimpls())
        }
        self.batches = "trackhook_log_batch" in implemented
        self.receives_values = bool(implemented)
        """False for a tracker without value hooks (do-nothing): its spool is not even read."""

    def open_run(self, run: RunInfo) -> dict[str, str]:
        facts: dict[str, str] = {}
        for result in self._open(run=run):
            if isinstance(result, Mapping):
                facts.update({str(key): str(value) for key, value in result.items()})
        return facts

    def log_batch(
        self, run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
    ) -> None:
        if self.batches:
            self._batch(run=run, metrics=metrics, params=params)
            return
        for metric in metrics:
            self._metric(run=run, key=metric.key, value=metric.value, step=metric.step)
        for param in params:
            self._param(run=run, key=param.key, value=param.value, step=param.step)

    def close_run(self, run: RunInfo, status: Status) -> None:
        self._close(run=run, status=status)

    def client_context(self, run: RunInfo) -> AbstractContextManager[Any]:
        context = self._context(run=run)
        return context if context is not None else nullcontext()


@dataclass
class LoadedTracker:
    """A configured tracker: its settings, its instance, its limits and its hooks."""

    name: str
    settings: TrackerSettings
    instance: object
    limits: TrackerLimits
    hooks: TrackerHooks
    recorded_config: dict[str, Any] = field(default_factory=dict)


def build_trackers(
    loaded: LoadedConfig, settings: Sequence[TrackerSettings] | None = None
) -> list[LoadedTracker]:
    """Import, validate, build and register the trackers the configuration names."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    built: list[tuple[TrackerSettings, object, dict[str, Any], str]] = []
    for item in loaded.config.trackers if settings is None else settings:
        found = load_tracker_class(item.type, loaded.source)
        distribution = found.distribution
        try:
            instance, recorded = _instantiate(found.factory, item, loaded.source)
        except ConfigError:
            raise
        except Exception as error:  # a bug in the plugin's constructor
            failure = TrackerLoadError(item.type, distribution, f"{type(error).__name__}: {error}")
            if item.on_error == "raise":
                raise failure from error
            warnings.warn(
                f"trackhook: {redact_text(str(failure))}; the run goes on without tracker "
                f"{item.display_name!r} (its values stay in the run's spool for `trackhook sync`)",
                TrackhookWarning,
                stacklevel=4,
            )
            continue
        try:
            manager.register(instance, name=item.display_name)
        except pluggy.PluginValidationError as error:
            raise TrackerLoadError(item.type, distribution, error) from error
        built.append((item, instance, recorded, distribution))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        culprit = next(entry for entry in built if entry[1] is error.plugin)
        raise TrackerLoadError(
            culprit[0].type,
            culprit[3],
            f"{error} (a hook name must be one of: {', '.join(hookspecs.__all__)})",
        ) from error
    return [
        LoadedTracker(
            name=item.display_name,
            settings=item,
            instance=instance,
            limits=getattr(instance, "limits", None) or TrackerLimits(),
            hooks=TrackerHooks(manager, instance),
            recorded_config=recorded,
        )
        for item, instance, recorded, _ in built
    ]


def _instantiate(
    factory: TrackerFactory, item: TrackerSettings, source: str
) -> tuple[object, dict[str, Any]]:
    model: type[BaseModel] | None = getattr(factory, "config_model", None)
    where = f"{source}: tracker {item.display_name!r} (type {item.type!r})"
    if model is None:
        if item.config:
            raise ConfigError(f"{where}: takes no config, got fields {sorted(item.config)}")
        return factory(), {}
    try:
        config = model.model_validate(item.config)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_validation_error(error)}") from None
    recorded = redact(config.model_dump(mode="json", by_alias=False))
    return factory(config), recorded
