"""``trackhook sync``: deliver what trackers have not received yet, run by run, with progress."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from trackhook.cli._errors import CommandError
from trackhook.cli._output import Output

if TYPE_CHECKING:
    from trackhook.sync import SyncResult

__all__ = ["sync_command"]


def sync_command(arguments: argparse.Namespace) -> int:
    from trackhook.errors import UnknownRunError
    from trackhook.sync import plan_sync

    try:
        plan = plan_sync(arguments.run_ids, arguments.config)
    except UnknownRunError as error:
        raise CommandError(
            error.what,
            "`trackhook runs` lists the runs; without RUN_ID, sync syncs them all",
        ) from None
    out = Output(plain=arguments.plain)
    if not plan.run_ids:
        out.line("no runs to sync")
        return 0
    left = 0
    with out.progress(len(plan.run_ids), "syncing") as advance:
        for result in plan.results(timeout=arguments.timeout):
            line, unfinished = _said(result)
            left += unfinished
            out.line(line)
            advance()
    return 1 if left else 0


def _said(result: SyncResult) -> tuple[str, int]:
    """The line that tells what sync did for one run, and how many things it left undone."""
    if result.another_sync:
        return (
            f"{result.run_id}: another `trackhook sync` of this run is still going on; "
            "run sync again once it is done, or give this one more time with --timeout"
        ), 1
    if result.refused:
        return f"{result.run_id}: not synced: {result.refused}", 1
    delivered = ", ".join(f"{name}: {count}" for name, count in result.delivered.items())
    line = f"{result.run_id}: delivered {delivered or 'nothing'}"
    left = 0
    if result.abandoned:
        line += "; its process had died, closed as FAIL"
    elif result.status == "RUNNING":
        line += "; the run is still open: its own process goes on delivering"
    missing = {name: count for name, count in result.undelivered.items() if count}
    if missing:
        left += sum(missing.values())
        line += "; still undelivered " + ", ".join(f"{n}: {c}" for n, c in missing.items())
    for name, error in result.not_closed.items():
        left += 1
        line += f"; not closed yet in {name} " + (
            f"(last error: {error})"
            if error
            else "(out of time: run sync again, or give it more with --timeout)"
        )
    for name, error in result.not_loaded.items():
        left += 1
        line += f"; tracker {name!r} not loaded ({error})"
    return line, left
