"""``trackhook sync``: deliver what trackers have not received yet, run by run, with progress."""

from __future__ import annotations

import argparse

from trackhook.cli._errors import CommandError
from trackhook.cli._output import Output

__all__ = ["sync_command"]


def sync_command(arguments: argparse.Namespace) -> int:
    from trackhook.config import load_config
    from trackhook.store import RunStore
    from trackhook.sync import sync_run

    loaded = load_config(arguments.config)
    store = RunStore(loaded.config.run_log_store)
    known = store.run_ids()
    run_ids = arguments.run_ids or known
    unknown = [run_id for run_id in run_ids if run_id not in known]
    if unknown:
        raise CommandError(
            f"no run {', '.join(map(repr, unknown))} in the run log store {str(store.root)!r}",
            "`trackhook runs` lists the runs; without RUN_ID, sync syncs them all",
        )
    out = Output(plain=arguments.plain)
    if not run_ids:
        out.line("no runs to sync")
        return 0
    left = 0
    with out.progress(len(run_ids), "syncing") as advance:
        for run_id in run_ids:
            result = sync_run(run_id, loaded, store, timeout=arguments.timeout)
            if result.another_sync:
                left += 1
                out.line(
                    f"{run_id}: another `trackhook sync` of this run is still going on; "
                    "run sync again once it is done, or give this one more time with --timeout"
                )
                advance()
                continue
            if result.refused:
                left += 1
                out.line(f"{run_id}: not synced: {result.refused}")
                advance()
                continue
            delivered = ", ".join(f"{name}: {count}" for name, count in result.delivered.items())
            line = f"{result.run_id}: delivered {delivered or 'nothing'}"
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
            out.line(line)
            advance()
    return 1 if left else 0
