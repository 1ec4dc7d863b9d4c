"""The environment variables trackhook reads and sets, each named once.

``TRACKHOOK_RUN_ID``, ``TRACKHOOK_TAG`` and ``TRACKHOOK_CONFIG`` are the user's (SPEC.md); a run
sets them, with its owner and store, in the environment of the child processes it starts
(``Run.child_environment``), so that a child's ``track_this`` joins the run. The
``TRACKHOOK_TRACK_*`` variables are in ``trackhook.envvars``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHILD_VARIABLES",
    "CONFIG_VARIABLE",
    "OWNER_VARIABLE",
    "RUN_ID_VARIABLE",
    "STORE_VARIABLE",
    "TAG_VARIABLE",
]

RUN_ID_VARIABLE: Final = "TRACKHOOK_RUN_ID"
TAG_VARIABLE: Final = "TRACKHOOK_TAG"
CONFIG_VARIABLE: Final = "TRACKHOOK_CONFIG"
"""The path of the configuration file, looked for after the ``config=`` argument."""
OWNER_VARIABLE: Final = "TRACKHOOK_RUN_OWNER"
"""``host:pid`` of the process that owns the run a child joins."""
STORE_VARIABLE: Final = "TRACKHOOK_RUN_LOG_STORE"
"""The run log store of the run a child joins."""
CHILD_VARIABLES: Final = (
    RUN_ID_VARIABLE,
    TAG_VARIABLE,
    OWNER_VARIABLE,
    STORE_VARIABLE,
    CONFIG_VARIABLE,
)
"""Every variable of ``Run.child_environment``."""
