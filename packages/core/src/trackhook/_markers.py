"""The pluggy markers of the ``trackhook`` project name.

Kept in a module of their own so that hookspecs, built-in trackers and third-party plugins can all
import them without importing the rest of the core.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "trackhook"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]
