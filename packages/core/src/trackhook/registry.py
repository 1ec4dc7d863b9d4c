"""Finding tracker classes by name: built-ins first, then the ``trackhook.trackers`` entry points.

Only the names the configuration asks for are imported, so a broken or heavy tracker package that
the configuration does not name costs nothing and breaks nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from trackhook._builtin import DoNothingTracker
from trackhook.errors import TrackerLoadError, UnknownTrackerError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PUBLISHED_TRACKERS",
    "FoundTracker",
    "TrackerFactory",
    "installed_trackers",
    "load_tracker_class",
    "registered",
]

ENTRY_POINT_GROUP = "trackhook.trackers"

PUBLISHED_TRACKERS = ("mlflow", "wandb", "tensorboard")
"""The tracker types the trackhook project publishes, each as the distribution
``trackhook-<type>`` from the folder ``packages/tracker-<type>``: named to a user who asks for one
that is not installed, or misspells it. The core imports none of them."""

TrackerFactory = Callable[..., Any]
"""A tracker class (or, in tests, any callable taking the validated config)."""


@dataclass(frozen=True)
class FoundTracker:
    """A tracker class and the distribution that provides it (for error messages)."""

    factory: TrackerFactory
    distribution: str


_BUILTINS: dict[str, TrackerFactory] = {"do-nothing": DoNothingTracker}
_overrides: dict[str, TrackerFactory] = {}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    """The group's entry points, read once: scanning installed distributions takes tens of ms."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _entry_point(tracker_type: str) -> EntryPoint | None:
    point = _entry_points().get(tracker_type)
    if point is None:  # installed since the first look (a test, a notebook): look again
        _entry_points.cache_clear()
        point = _entry_points().get(tracker_type)
    return point


def installed_trackers() -> list[str]:
    """Names of every tracker that a configuration may use, sorted."""
    return sorted({*_BUILTINS, *_overrides, *_entry_points()})


def load_tracker_class(tracker_type: str, source: str) -> FoundTracker:
    """Import the tracker class named ``tracker_type``, or raise a helpful error."""
    if tracker_type in _overrides:
        return FoundTracker(_overrides[tracker_type], "(registered in code)")
    if tracker_type in _BUILTINS:
        return FoundTracker(_BUILTINS[tracker_type], "trackhook")
    point = _entry_point(tracker_type)
    if point is None:
        raise UnknownTrackerError(tracker_type, installed_trackers(), source, PUBLISHED_TRACKERS)
    distribution = point.dist.name if point.dist is not None else "(unknown distribution)"
    try:
        loaded: TrackerFactory = point.load()
    except (
        Exception
    ) as error:  # any import-time failure of a plugin is reported, not propagated raw
        raise TrackerLoadError(
            tracker_type, distribution, f"{type(error).__name__}: {error}"
        ) from error
    if not callable(loaded):
        raise TrackerLoadError(
            tracker_type, distribution, f"the entry point {point.value!r} is not a class"
        )
    return FoundTracker(loaded, distribution)


@contextmanager
def registered(tracker_type: str, factory: TrackerFactory) -> Iterator[None]:
    """Make ``tracker_type`` name ``factory`` for the duration of a block (tests, fixtures)."""
    previous = _overrides.get(tracker_type)
    _overrides[tracker_type] = factory
    try:
        yield
    finally:
        if previous is None:
            del _overrides[tracker_type]
        else:
            _overrides[tracker_type] = previous
