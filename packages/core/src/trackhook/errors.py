"""Every error trackhook raises on purpose, under one base class.

Each error names what is wrong (the key, the field, the tracker) and what to do about it, so that
the message alone is enough for a user to fix their code or configuration.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ConfigError",
    "InvalidValueError",
    "RunContinuedWarning",
    "TrackerDeliveryError",
    "TrackerLoadError",
    "TrackhookError",
    "TrackhookWarning",
    "UnknownRunError",
    "UnknownTrackerError",
    "ValuesRejected",
    "counted",
    "did_you_mean",
    "warn_in_background",
]


class TrackhookError(Exception):
    """Base class of every error that trackhook raises on purpose."""


class InvalidValueError(TrackhookError, ValueError):
    """A value, key or step given to ``track_this`` cannot be tracked, or a run cannot be named.

    Raised before anything of the call is recorded: values tracked by earlier calls are kept.
    ``key`` is the offending key, or ``"run_id"`` / ``"tag"`` for a run that cannot be opened
    under that name (raised before anything of the run starts).
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        what = f"invalid {key}" if key in _RUN_NAMES else f"cannot track {key!r}"
        super().__init__(f"{what}: {reason}")


_RUN_NAMES = frozenset({"run_id", "tag"})


class ConfigError(TrackhookError):
    """The trackhook configuration cannot be read or is invalid; the message names the source."""


class UnknownTrackerError(ConfigError):
    """The configuration names a tracker type that no installed package provides.

    A misspelt type gets the closest known one, installed or published by the trackhook project
    (``mlfow`` -> ``mlflow``), and the command that installs it.
    """

    def __init__(
        self, tracker_type: str, installed: list[str], source: str, published: Iterable[str] = ()
    ) -> None:
        self.tracker_type = tracker_type
        self.installed = installed
        others = sorted({*installed, *published} - {tracker_type})
        meant = _closest(tracker_type, others)
        guess = f"did you mean {meant!r}? " if meant else ""
        how = _how_to_get(meant or tracker_type, installed, set(published))
        super().__init__(
            f"{source}: unknown tracker type {tracker_type!r}; {guess}"
            f"installed trackers: {', '.join(installed)}; {how}"
        )


def _how_to_get(tracker_type: str, installed: list[str], published: set[str]) -> str:
    if tracker_type in installed:
        return f"write type: {tracker_type}"
    if tracker_type in published:
        # The project's naming convention, which its plugin tutorial asks every plugin to follow.
        return (
            f"install it with: pip install trackhook-{tracker_type} (or, from a checkout of the "
            f"trackhook repository: pip install ./packages/tracker-{tracker_type})"
        )
    return (
        "install the package that provides it (an entry point named "
        f"{tracker_type!r} in the group 'trackhook.trackers'; by convention, trackhook-"
        f"{tracker_type})"
    )


def _closest(unknown: str, known: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(unknown, list(known), n=1)
    return close[0] if close else None


class TrackerLoadError(TrackhookError):
    """A tracker's entry point could not be imported, or its class does not follow the contract."""

    def __init__(self, tracker_type: str, distribution: str, cause: BaseException | str) -> None:
        from trackhook.redaction import redact_text  # an import error may quote a secret

        self.tracker_type = tracker_type
        self.distribution = distribution
        super().__init__(
            f"tracker {tracker_type!r} from the distribution {distribution!r} could not be loaded: "
            f"{redact_text(str(cause))}; reinstall or fix that package, or remove it from the "
            "configuration"
        )


class TrackerDeliveryError(TrackhookError):
    """A tracker configured with ``on_error: raise`` failed; the cause is chained."""

    def __init__(self, tracker_name: str, cause: BaseException) -> None:
        from trackhook.redaction import redact_text

        self.tracker_name = tracker_name
        super().__init__(
            f"tracker {tracker_name!r} failed: {type(cause).__name__}: {redact_text(str(cause))} "
            "(it is configured with on_error: raise; use on_error: warn to keep the run going "
            "and deliver later with `trackhook sync`)"
        )


class ValuesRejected(TrackhookError):
    """Raised by a tracker's hook when the tracker refuses what it was given for its content.

    Not for outages: a server that is down, slow or refusing credentials raises anything else and
    is retried. ``ValuesRejected`` says that offering the same values again can never succeed (a
    value out of the tracker's range, a key it will never store). The core then offers the values
    of the batch in smaller parts to find the refused ones, sets those aside (counted ``rejected``
    in the run log, with ``reason``) and delivers the rest; refused values are never offered again.

    .. versionadded:: 0.2
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TrackhookWarning(UserWarning):
    """A tracker failed or could not store something; the message says what and what to do."""


class RunContinuedWarning(TrackhookWarning):
    """A run that had closed is opened again under its ``run_id`` and continues.

    Continuing is the contract (a resumed job keeps its run); the warning makes a script that
    re-runs with a fixed ``run_id`` visible. Where continuing is what you mean, silence it with
    ``warnings.filterwarnings("ignore", category=RunContinuedWarning)``.
    """


def did_you_mean(unknown: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``known`` to a misspelt name, else ``""``.

    For error messages of the core and of tracker plugins alike (unknown fields, URI schemes).
    """
    close = _closest(unknown, known)
    return f"did you mean {close!r}? " if close else ""


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``"1 value"``, ``"3 values"``: a count in a message, with the noun agreeing with it."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def warn_in_background(message: str, category: type[Warning] = TrackhookWarning) -> None:
    """Warn as trackhook, never from a line of trackhook's code; never raise.

    The warning is attributed to the user's line that led to it (the ``with start_run(...)``
    whose exit closed the run, the ``track_this`` call) where this thread has one, so Python shows
    that line under the message; from a delivery thread, which runs no user code, it is attributed
    to ``trackhook`` itself and no source line is shown. The category's name already says it is
    trackhook's: ``message`` carries no ``trackhook:`` prefix.

    It never raises, even under ``-W error``: it is called from delivery and close, and what it
    says is also in the run log, which an exception here would leave unwritten.
    """
    frame = _users_frame()
    if frame is None:
        filename, lineno, module, registry = "trackhook", 0, "trackhook", _BACKGROUND_REGISTRY
    else:
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        module = str(frame.f_globals.get("__name__", "__main__"))
        registry = frame.f_globals.setdefault("__warningregistry__", {})
    with contextlib.suppress(Warning):
        warnings.warn_explicit(message, category, filename, lineno, module, registry)


_BACKGROUND_REGISTRY: dict[str | tuple[str, type[Warning], int], int] = {}
"""Which background warnings were shown: the same message is shown once, as ``warnings.warn``."""

_PLUMBING = frozenset({"contextlib", "threading", "atexit", "runpy"})
"""Standard-library modules that call trackhook on the user's behalf; never the user's line."""


def _users_frame() -> FrameType | None:
    """The innermost frame of this thread that is neither trackhook's nor standard plumbing."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not (_is_trackhooks(module) or module in _PLUMBING):
            return frame
        frame = frame.f_back
    return None


def _is_trackhooks(module: str) -> bool:
    return module == "trackhook" or module.startswith("trackhook.")


class UnknownRunError(TrackhookError, LookupError):
    """Run ids that the run log store does not hold (``trackhook sync RUN_ID``, ``sync_runs``)."""

    def __init__(self, run_ids: list[str], store: Path) -> None:
        self.run_ids = run_ids
        self.store = store
        super().__init__(f"{self.what}: `trackhook runs` lists the runs it holds")

    @property
    def what(self) -> str:
        """Which run ids are not in which store, said in a few words."""
        names = ", ".join(map(repr, self.run_ids))
        return f"no run {names} in the run log store {str(self.store)!r}"
