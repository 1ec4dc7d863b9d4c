"""Optional libraries that a tracker uses when they are installed, and says once when they are not.

An adapter can do better with a library its users may lack (pillow, to show an image as an image
rather than a file) without making it a dependency: it asks ``available()`` before each use, and
the user is warned once per tracker, with the command that installs it, instead of once per value.
"""

from __future__ import annotations

import importlib

from trackhook.errors import warn_in_background

__all__ = ["OptionalLibraries"]


class OptionalLibraries:
    """Whether every one of ``modules`` imports; when one does not, ``missing`` is said once."""

    def __init__(self, *modules: str, missing: str) -> None:
        self._modules = modules
        self._missing = missing
        self._warned = False

    def available(self) -> bool:
        """True when each module imports (imported now: the caller is about to use them)."""
        try:
            for module in self._modules:
                # its top package first, as an import statement does: a module already loaded
                # says nothing of a package since removed or blocked (None in sys.modules)
                importlib.import_module(module.partition(".")[0])
                importlib.import_module(module)
        except ImportError:
            if not self._warned:
                self._warned = True
                warn_in_background(self._missing)
            return False
        return True
