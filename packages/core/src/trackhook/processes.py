"""Whether a process of this machine still runs: how a run, its index and its spool are known
to be abandoned (by ``trackhook sync``, or by the next run that finds them).

Public for the trackers too: an adapter that must tell a stray file of a stopped process from one
still in use (the MLflow tracker's half-created sqlite stores) calls ``process_exists`` from here.
"""

from __future__ import annotations

import os

__all__ = ["process_exists"]


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; signal 0 checks without sending anything.

    A process of another user counts as running: it cannot be signalled, but it exists.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
