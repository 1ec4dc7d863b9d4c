"""``python -m trackhook.cli``: the same as the ``trackhook`` command."""

from __future__ import annotations

import sys

from trackhook.cli import main

sys.exit(main())
