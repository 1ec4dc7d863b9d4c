"""The ``trackhook`` command: ``sync``, ``runs`` and ``show``.

Its imports happen here only, so that ``import trackhook`` stays light. Errors are one readable
line and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from trackhook.errors import TrackhookError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trackhook`` console script."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return 2
    try:
        code: int = arguments.handler(arguments)
        return code
    except TrackhookError as error:
        if arguments.debug:
            raise
        print(f"trackhook: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackhook", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--config", help="configuration file (default: the usual lookup)")
    commands = parser.add_subparsers(dest="command")

    sync = commands.add_parser("sync", help="deliver undelivered values, close abandoned runs")
    sync.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: every run")
    sync.add_argument("--timeout", type=float, help="seconds to wait for each tracker")
    sync.set_defaults(handler=_sync)

    runs = commands.add_parser("runs", help="list the runs in the run log store, newest first")
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", help="show one run")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print the run log as JSON")
    show.set_defaults(handler=_show)
    return parser


def _sync(arguments: argparse.Namespace) -> int:
    from trackhook.sync import sync_runs

    results = sync_runs(arguments.run_ids or None, arguments.config, timeout=arguments.timeout)
    left = 0
    for result in results:
        delivered = ", ".join(f"{name}: {count}" for name, count in result.delivered.items())
        line = f"{result.run_id}: delivered {delivered or 'nothing'}"
        if result.abandoned:
            line += "; its process had died, closed as FAIL"
        missing = {name: count for name, count in result.undelivered.items() if count}
        if missing:
            left += sum(missing.values())
            line += "; still undelivered " + ", ".join(f"{n}: {c}" for n, c in missing.items())
        print(line)
    if not results:
        print("no runs to sync")
    return 1 if left else 0


def _load_documents(config: str | None) -> list[dict[str, Any]]:
    from trackhook.config import load_config
    from trackhook.runlog import read_run_log
    from trackhook.store import RunStore

    store = RunStore(load_config(config).config.run_log_store)
    documents = []
    for run_id in store.run_ids():
        path = store.run_log_path(run_id)
        if path.is_file():
            documents.append(read_run_log(path))
    return documents


def _runs(arguments: argparse.Namespace) -> int:
    documents = sorted(
        _load_documents(arguments.config), key=lambda d: str(d.get("start_time")), reverse=True
    )
    print(f"{'RUN ID':<28} {'TAG':<16} {'STATUS':<8} {'START':<26} UNDELIVERED")
    for document in documents:
        undelivered = sum(
            int((item.get("delivery") or {}).get("undelivered") or 0)
            for item in document.get("experiment_trackers") or []
        )
        print(
            f"{document['run_id']:<28} {document.get('tag', ''):<16} "
            f"{document.get('status', ''):<8} {document.get('start_time', '')!s:<26} "
            f"{undelivered}"
        )
    return 0


def _show(arguments: argparse.Namespace) -> int:
    from trackhook.errors import NoActiveRunError

    for document in _load_documents(arguments.config):
        if document["run_id"] == arguments.run_id:
            if arguments.json:
                print(json.dumps(document, indent=4))
            else:
                print(
                    f"run {document['run_id']}  tag {document.get('tag')!r}  "
                    f"status {document.get('status')}"
                )
                for key, value in (document.get("user_defined_metrics") or {}).items():
                    print(f"  {key}: {json.dumps(value)}")
            return 0
    raise NoActiveRunError(
        f"no run {arguments.run_id!r} in the run log store; `trackhook runs` lists them"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
