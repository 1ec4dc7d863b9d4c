"""Building the configured trackers and calling their hooks through a typed facade.

Every tracker instance is registered with one ``pluggy.PluginManager("trackhook")``; each tracker
gets a ``TrackerHooks`` facade whose callers reach that tracker alone (pluggy's
``subset_hook_caller``), because in one plain hook call the first exception would stop every other
tracker.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from trackhook import hookspecs
from trackhook._markers import PROJECT_NAME
from trackhook.config import LoadedConfig, TrackerSettings, describe_validation_error
from trackhook.errors import ConfigError, TrackerLoadError, warn_in_background
from trackhook.limits import TrackerLimits
from trackhook.records import FileKind, FileRecord, MetricRecord, ParamRecord, RunInfo, Status
from trackhook.redaction import redact, redact_text
from trackhook.registry import TrackerFactory, load_tracker_class

__all__ = [
    "BuiltTrackers",
    "LoadedTracker",
    "TrackerHooks",
    "TrackerNotLoaded",
    "build_trackers",
    "contract_problem",
]


class TrackerHooks:
    """One method per hook, reaching one tracker only."""

    def __init__(
        self, manager: pluggy.PluginManager, plugin: object, file_kinds: frozenset[FileKind]
    ) -> None:
        others = [other for other in manager.get_plugins() if other is not plugin]
        hook = manager.hook
        self._open = manager.subset_hook_caller("trackhook_open_run", others)
        self._metric = manager.subset_hook_caller("trackhook_log_metric", others)
        self._param = manager.subset_hook_caller("trackhook_log_param", others)
        self._batch = manager.subset_hook_caller("trackhook_log_batch", others)
        self._file = manager.subset_hook_caller("trackhook_log_file", others)
        self._close = manager.subset_hook_caller("trackhook_close_run", others)
        self._context = manager.subset_hook_caller("trackhook_client_context", others)
        implemented = {
            name
            for name in (
                "trackhook_log_batch",
                "trackhook_log_metric",
                "trackhook_log_param",
                "trackhook_log_file",
            )
            if any(impl.plugin is plugin for impl in getattr(hook, name).get_hookimpls())
        }
        self.batches = "trackhook_log_batch" in implemented
        self.receives_metrics = self.batches or "trackhook_log_metric" in implemented
        self.receives_params = self.batches or "trackhook_log_param" in implemented
        receives_files = "trackhook_log_file" in implemented
        self.file_kinds = file_kinds if receives_files else frozenset()
        """The kinds of file its ``trackhook_log_file`` takes (``TrackerLimits.file_kinds``)."""
        self.receives_values = self.receives_metrics or self.receives_params or receives_files
        """False for a tracker without value hooks (do-nothing): its spool is not even read."""

    def log_records(
        self, run: RunInfo, records: Sequence[MetricRecord | ParamRecord | FileRecord]
    ) -> int:
        """Hand one batch over: a file alone (``batching`` makes it so), or metrics and params.
        Returns how many of the records a hook took (a kind without a hook takes none)."""
        if len(records) == 1 and isinstance(records[0], FileRecord):
            if records[0].kind not in self.file_kinds:
                return 0
            self._file(run=run, file=records[0])
            return 1
        metrics = [record for record in records if type(record) is MetricRecord]
        params = [record for record in records if type(record) is ParamRecord]
        self.log_batch(run, metrics, params)
        return len(metrics) * self.receives_metrics + len(params) * self.receives_params

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


@dataclass(frozen=True)
class TrackerNotLoaded:
    """A configured tracker left out of a run because its plugin is broken (``on_error: warn``)."""

    name: str
    type: str
    config: dict[str, Any]
    """As configured, with secrets removed: what ``trackhook sync`` rebuilds the tracker from."""
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "config": self.config, "error": self.error}


@dataclass
class BuiltTrackers:
    """The configured trackers that loaded, and those that did not."""

    loaded: list[LoadedTracker]
    not_loaded: list[TrackerNotLoaded] = field(default_factory=list)


def build_trackers(
    loaded: LoadedConfig, settings: Sequence[TrackerSettings] | None = None, *, quiet: bool = False
) -> BuiltTrackers:
    """Import, validate, build and register the trackers the configuration names.

    A configuration mistake (an unknown type, an invalid field) is always an error. A broken
    plugin (its import, its constructor, a hook that breaks the contract) is a ``TrackerLoadError``
    with ``on_error: raise``; otherwise it is a warning (none when ``quiet``: the caller reports
    ``not_loaded`` itself) and the run goes on without that tracker, as it would if the tracker
    failed later: its values stay in the spool.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    built: list[tuple[TrackerSettings, object, dict[str, Any]]] = []
    not_loaded: list[TrackerNotLoaded] = []
    for item in loaded.config.trackers if settings is None else settings:
        try:
            instance, recorded = _load(manager, item, loaded.source)
        except TrackerLoadError as failure:
            if item.on_error == "raise":
                raise
            error = redact_text(str(failure))
            if not quiet:
                warn_in_background(
                    f"{error}; the run goes on without tracker {item.display_name!r} "
                    "(its values stay in the run's spool: deliver them with `trackhook sync` once "
                    "the plugin is fixed)"
                )
            not_loaded.append(
                TrackerNotLoaded(item.display_name, item.type, redact(dict(item.config)), error)
            )
            continue
        built.append((item, instance, recorded))
    trackers = [
        LoadedTracker(
            name=item.display_name,
            settings=item,
            instance=instance,
            limits=limits,
            hooks=TrackerHooks(manager, instance, limits.file_kinds),
            recorded_config=recorded,
        )
        for item, instance, recorded in built
        for limits in [getattr(instance, "limits", None) or TrackerLimits()]
    ]
    for tracker in trackers:
        _warn_of_a_missing_value_hook(tracker)
    return BuiltTrackers(trackers, not_loaded)


def _load(
    manager: pluggy.PluginManager, item: TrackerSettings, source: str
) -> tuple[object, dict[str, Any]]:
    """Build ``item``'s tracker and register it, or raise ``TrackerLoadError`` saying why not."""
    found = load_tracker_class(item.type, source)
    try:
        instance, recorded = _instantiate(found.factory, item, source)
    except ConfigError:
        raise
    except Exception as error:  # a bug in the plugin's constructor
        raise TrackerLoadError(
            item.type, found.distribution, f"{type(error).__name__}: {error}"
        ) from error
    try:
        _register_checked(manager, instance, item.display_name)
    except pluggy.PluginValidationError as error:
        raise TrackerLoadError(item.type, found.distribution, error) from error
    return instance, recorded


def contract_problem(factory: TrackerFactory) -> str | None:
    """How a tracker class breaks the hook contract, found without building it, or ``None``.

    For ``trackhook trackers``, so that a plugin with a misspelled or unmarked hook shows up as
    broken before a run finds out.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        _register_checked(manager, factory, None)
    except pluggy.PluginValidationError as error:
        return str(error)
    return None


def _register_checked(manager: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    """Register ``plugin``, or leave it out and raise ``PluginValidationError`` saying why."""
    try:
        manager.register(plugin, name=name)
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            raise pluggy.PluginValidationError(
                error.plugin,
                f"{error} (a hook name must be one of: {', '.join(hookspecs.__all__)})",
            ) from error
        unmarked = _unmarked_hooks(manager, plugin)
        if unmarked:
            raise pluggy.PluginValidationError(
                plugin,
                f"{', '.join(unmarked)} of {_class_of(plugin).__name__} "
                f"{'is' if len(unmarked) == 1 else 'are'} not marked with @trackhook.hookimpl, "
                "so it would never be called: add the decorator",
            )
    except pluggy.PluginValidationError:
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        raise


def _unmarked_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook names the tracker defines without ``@trackhook.hookimpl``: pluggy ignores those."""
    registered = {caller.name for caller in manager.get_hookcallers(plugin) or []}
    return [
        name
        for name in hookspecs.__all__
        if name not in registered and callable(getattr(_class_of(plugin), name, None))
    ]


def _class_of(plugin: object) -> type:
    """The tracker class: ``plugin`` itself when checked unbuilt (``trackhook trackers``)."""
    return plugin if isinstance(plugin, type) else type(plugin)


def _warn_of_a_missing_value_hook(tracker: LoadedTracker) -> None:
    hooks = tracker.hooks
    if hooks.receives_metrics == hooks.receives_params:
        return  # both kinds have a hook, or neither (a tracker that only opens and closes runs)
    missing, kind = (
        ("trackhook_log_metric", "numeric values")
        if hooks.receives_params
        else ("trackhook_log_param", "other values (strings, bools, lists)")
    )
    warn_in_background(
        f"tracker {tracker.name!r} implements neither {missing} nor "
        f"trackhook_log_batch: its {kind} are not sent to it (the run log keeps them; they are "
        "counted as 'skipped' in its delivery report)"
    )


def _instantiate(
    factory: TrackerFactory, item: TrackerSettings, source: str
) -> tuple[object, dict[str, Any]]:
    model: type[BaseModel] | None = getattr(factory, "config_model", None)
    where = f"{source}: tracker {item.display_name!r} (type {item.type!r})"
    if model is None:
        if item.config:
            raise ConfigError(f"{where}: takes no config, got fields {sorted(item.config)}")
        # ``cls(config)`` as for every tracker, the config being empty; ``cls()`` suits too.
        return (factory({}) if _takes_one_argument(factory) else factory()), {}
    try:
        config = model.model_validate(item.config)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_validation_error(error, model)}") from None
    recorded = redact(config.model_dump(mode="json", by_alias=False))
    return factory(config), recorded


def _takes_one_argument(factory: TrackerFactory) -> bool:
    try:
        inspect.signature(factory).bind({})
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume the contract's cls(config)
        return True
    return True
