"""trackhook: track metrics and parameters once, send them to any experiment tracker.

::

    import trackhook

    with trackhook.start_run(run_id="clean-ride-1048", tag="baseline") as run:
        trackhook.track_this(step=1, loss=0.25, optimiser="adam")

Which trackers receive the values is configuration (``trackhook.yaml``); trackers are plugins found
through the ``trackhook.trackers`` entry points and implement the hooks of ``trackhook.hookspecs``.

``import trackhook`` stays cheap: the hook markers, the errors and the version load at once, the
engine (runs, delivery, the spool, the run log index) loads on first use of one of its names (PEP
562, see ``__getattr__``). A plugin that imports ``trackhook.hookimpl`` therefore does not pull in
the engine, and a script pays for it only when it opens a run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from trackhook.__about__ import __version__
from trackhook._markers import hookimpl, hookspec
from trackhook.errors import (
    ConfigError,
    InvalidValueError,
    NoActiveRunError,
    RunContinuedWarning,
    TrackerDeliveryError,
    TrackerLoadError,
    TrackhookError,
    TrackhookWarning,
    UnknownTrackerError,
    ValuesRejected,
)

if TYPE_CHECKING:
    from trackhook.api import (
        active_run,
        get_experiment_tracker_context,
        start_run,
        track_env,
        track_params,
        track_this,
    )
    from trackhook.files import File, Image
    from trackhook.limits import TighterLimitsRequired, TrackerLimits
    from trackhook.records import (
        FileRecord,
        MetricRecord,
        ParamRecord,
        ParamValue,
        RunInfo,
        Status,
    )
    from trackhook.run import Run
    from trackhook.runid import generate_run_id

_LAZY_NAMES: dict[str, str] = {
    "active_run": "trackhook.api",
    "get_experiment_tracker_context": "trackhook.api",
    "start_run": "trackhook.api",
    "track_env": "trackhook.api",
    "track_params": "trackhook.api",
    "track_this": "trackhook.api",
    "File": "trackhook.files",
    "Image": "trackhook.files",
    "TighterLimitsRequired": "trackhook.limits",
    "TrackerLimits": "trackhook.limits",
    "FileRecord": "trackhook.records",
    "MetricRecord": "trackhook.records",
    "ParamRecord": "trackhook.records",
    "ParamValue": "trackhook.records",
    "RunInfo": "trackhook.records",
    "Status": "trackhook.records",
    "Run": "trackhook.run",
    "generate_run_id": "trackhook.runid",
}
"""Each public name that loads on first use, and the module that defines it."""


def __getattr__(name: str) -> object:
    """Load the engine on the first use of one of its public names, and return that name."""
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module 'trackhook' has no attribute {name!r}")
    _load_the_engine()
    return globals()[name]


def _load_the_engine() -> None:
    """Bind every lazily loaded name in this module, then remove ``__getattr__``.

    All names at once, since ``trackhook.api`` imports the rest of the engine anyway. Removing
    ``__getattr__`` is what keeps the hot path fast: CPython specialises attribute reads only on
    modules without one, so ``trackhook.track_this`` in a training loop costs what it did with
    eager imports (``pop``, not ``del``: two threads may load the engine at the same time).
    """
    namespace = globals()
    for name, module_name in _LAZY_NAMES.items():
        namespace[name] = getattr(importlib.import_module(module_name), name)
    namespace.pop("__getattr__", None)


def __dir__() -> list[str]:
    """List the lazily loaded names too, as if they had been imported eagerly."""
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ConfigError",
    "File",
    "FileRecord",
    "Image",
    "InvalidValueError",
    "MetricRecord",
    "NoActiveRunError",
    "ParamRecord",
    "ParamValue",
    "Run",
    "RunContinuedWarning",
    "RunInfo",
    "Status",
    "TighterLimitsRequired",
    "TrackerDeliveryError",
    "TrackerLimits",
    "TrackerLoadError",
    "TrackhookError",
    "TrackhookWarning",
    "UnknownTrackerError",
    "ValuesRejected",
    "__version__",
    "active_run",
    "generate_run_id",
    "get_experiment_tracker_context",
    "hookimpl",
    "hookspec",
    "start_run",
    "track_env",
    "track_params",
    "track_this",
]
