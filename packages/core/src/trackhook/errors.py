"""Every error trackhook raises on purpose, under one base class.

Each error names what is wrong (the key, the field, the tracker) and what to do about it, so that
the message alone is enough for a user to fix their code or configuration.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "InvalidValueError",
    "NoActiveRunError",
    "TrackerDeliveryError",
    "TrackerLoadError",
    "TrackhookError",
    "TrackhookWarning",
    "UnknownTrackerError",
    "did_you_mean",
    "warn_in_background",
]


class TrackhookError(Exception):
    """Base class of every error that trackhook raises on purpose."""


class InvalidValueError(TrackhookError, ValueError):
    """A value, key or step given to ``track_this`` cannot be tracked.

    Raised before anything of the call is recorded: values tracked by earlier calls are kept.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"cannot track {key!r}: {reason}")


class ConfigError(TrackhookError):
    """The trackhook configuration cannot be read or is invalid; the message names the source."""


class UnknownTrackerError(ConfigError):
    """The configuration names a tracker type that no installed package provides."""

    def __init__(self, tracker_type: str, installed: list[str], source: str) -> None:
        self.tracker_type = tracker_type
        self.installed = installed
        hint = _INSTALL_HINTS.get(tracker_type)
        install = (
            f"install it with: pip install {hint}"
            if hint
            else "install the package that provides it (an entry point named "
            f"{tracker_type!r} in the group 'trackhook.trackers')"
        )
        super().__init__(
            f"{source}: unknown tracker type {tracker_type!r}; "
            f"installed trackers: {', '.join(installed)}; {install}"
        )


_INSTALL_HINTS = {"mlflow": "trackhook-mlflow", "wandb": "trackhook-wandb"}


class TrackerLoadError(TrackhookError):
    """A tracker's entry point could not be imported, or its class does not follow the contract."""

    def __init__(self, tracker_type: str, distribution: str, cause: BaseException | str) -> None:
        self.tracker_type = tracker_type
        self.distribution = distribution
        super().__init__(
            f"tracker {tracker_type!r} from the distribution {distribution!r} could not be loaded: "
            f"{cause}; reinstall or fix that package, or remove it from the configuration"
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


class TrackhookWarning(UserWarning):
    """A tracker failed or could not store something; the message says what and what to do."""


def did_you_mean(unknown: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``known`` to a misspelt name, else ``""``.

    For error messages of the core and of tracker plugins alike (unknown fields, URI schemes).
    """
    import difflib  # only when an error is being written: not at ``import trackhook``

    close = difflib.get_close_matches(unknown, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def warn_in_background(message: str) -> None:
    """Warn from delivery or close, where ``-W error`` must not turn the warning into a failure.

    What the warning says is also in the run log, which an exception here would leave unwritten.
    """
    with contextlib.suppress(Warning):
        warnings.warn(f"trackhook: {message}", TrackhookWarning, stacklevel=3)


class NoActiveRunError(TrackhookError):
    """An operation needs an open run and none is open in this process."""
