"""Which rank of a distributed job this process is, read when a run opens (never at import time).

Launchers set the rank late (a process may import trackhook before ``RANK`` exists), so the rank
is read by ``start_run`` each time. Checked in order: ``RANK``; ``LOCAL_RANK`` with ``NODE_RANK``
(and ``LOCAL_WORLD_SIZE`` when present); ``SLURM_PROCID``; ``OMPI_COMM_WORLD_RANK``; ``PMI_RANK``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["current_rank"]

_GLOBAL_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def _int(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "").strip()
    return int(text) if text.isdigit() else None


def current_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """The process's global rank, or ``None`` outside distributed training.

    With only ``LOCAL_RANK`` and ``NODE_RANK`` and no ``LOCAL_WORLD_SIZE``, ranks on nodes other
    than node 0 get ``node * 1000 + local``: unique and non-zero, which is all trackhook needs.
    """
    env = os.environ if environ is None else environ
    rank = _int(env, "RANK")
    if rank is not None:
        return rank
    local = _int(env, "LOCAL_RANK")
    if local is not None:
        node = _int(env, "NODE_RANK") or 0
        per_node = _int(env, "LOCAL_WORLD_SIZE")
        if node == 0:
            return local
        return node * per_node + local if per_node else node * 1000 + local
    for name in _GLOBAL_RANK_VARIABLES[1:]:
        rank = _int(env, name)
        if rank is not None:
            return rank
    return None
