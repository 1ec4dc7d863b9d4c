"""trackhook: track metrics and parameters once, send them to any experiment tracker.

::

    import trackhook

    with trackhook.start_run(run_id="clean-ride-1048", tag="baseline") as run:
        trackhook.track_this(step=1, loss=0.25, optimiser="adam")

Which trackers receive the values is configuration (``trackhook.yaml``); trackers are plugins found
through the ``trackhook.trackers`` entry points and implement the hooks of ``trackhook.hookspecs``.
"""

from __future__ import annotations

from trackhook.__about__ import __version__
from trackhook._markers import hookimpl, hookspec
from trackhook.api import (
    active_run,
    get_experiment_tracker_context,
    start_run,
    track_env,
    track_this,
)
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
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.records import MetricRecord, ParamRecord, ParamValue, RunInfo, Status
from trackhook.run import Run
from trackhook.runid import generate_run_id

__all__ = [
    "ConfigError",
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
    "track_this",
]
