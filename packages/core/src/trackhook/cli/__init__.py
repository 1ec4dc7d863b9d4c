"""The ``trackhook`` command: ``run``, ``runs``, ``show``, ``plot``, ``trackers`` and ``sync``.

It needs the standard library alone: ``rich`` (``pip install 'trackhook[cli]'``) draws tables and
progress bars when it is installed and the output is a terminal, and ``matplotlib``
(``pip install 'trackhook[plot]'``) draws ``trackhook plot``'s figures. Every import happens in the
command that needs it, so ``import trackhook`` stays light and ``trackhook --help`` is quick.

An error is one line, ``trackhook: error: ...``, followed by a hint, and exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from trackhook.cli._errors import CommandError

__all__ = ["CommandError", "main"]

_DEBUG_HINT = "add --debug to see the traceback"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trackhook`` console script; returns the exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help(sys.stderr)
        return 2
    _show_trackhook_warnings_in_one_line()
    try:
        code: int = arguments.handler(arguments)
    except KeyboardInterrupt:
        if arguments.debug:
            raise
        print("trackhook: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped (`trackhook runs | head`): not an error to report.
        # Standard output is pointed at /dev/null so that the interpreter's last flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as error:
        if arguments.debug:
            raise
        _report(error, sys.stderr)
        return 2
    return code


def _report(error: Exception, stream: TextIO) -> None:
    from trackhook.errors import ConfigError, TrackhookError

    if isinstance(error, CommandError):
        message, hint = str(error), error.hint
    elif isinstance(error, ConfigError):
        message, hint = str(error), "`trackhook trackers` lists the trackers installed here"
    elif isinstance(error, TrackhookError):
        message, hint = str(error), _DEBUG_HINT
    elif isinstance(error, OSError):
        message, hint = f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), None
    else:
        message = f"unexpected {type(error).__name__}: {error}"
        hint = f"{_DEBUG_HINT}; please report it"
    print(f"trackhook: error: {' '.join(message.split())}", file=stream)
    print(f"hint: {hint or _DEBUG_HINT}", file=stream)


def _show_trackhook_warnings_in_one_line() -> None:
    """Warnings of trackhook (a tracker that failed, a key renamed) as ``trackhook: warning:``."""
    from trackhook.errors import TrackhookWarning

    default = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, TrackhookWarning):
            print(f"trackhook: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackhook",
        description="Run commands as tracked runs, inspect the run log store, and deliver to "
        "trackers.",
        epilog="Each command has its own --help. Documentation: the trackhook docs, page 'CLI'.",
    )
    _add_common_options(parser, default=None)
    # Options repeated on each command (`trackhook show --config F RUN`) must not reset the ones
    # given before the command: SUPPRESS leaves the attribute alone when the option is absent.
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a command as a tracked run",
        description="Run COMMAND as a run: its Python children join the run, and the "
        "TRACKHOOK_TRACK_* variables a bash command exports are tracked when it ends. The exit "
        "code is the command's; a non-zero one closes the run as FAIL.",
        usage="trackhook run [--config FILE] [--run-id ID] [--tag TAG] -- COMMAND [ARGS ...]",
    )
    run.add_argument("--run-id", metavar="ID", help="the run's id (default: a generated one)")
    run.add_argument("--tag", default="", help="the experiment (MLflow) or project (W&B)")
    run.add_argument("-q", "--quiet", action="store_true", help="no summary line at the end")
    run.add_argument("child", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS ...]")
    run.set_defaults(handler=_lazy("trackhook.cli._run", "run_command"))

    runs = commands.add_parser(
        "runs", parents=[common], help="list the runs in the run log store, newest first"
    )
    runs.add_argument("-n", "--limit", type=int, metavar="N", help="only the N newest runs")
    runs.set_defaults(handler=_lazy("trackhook.cli._show", "runs_command"))

    show = commands.add_parser(
        "show",
        parents=[common],
        help="one run: its parameters, and each metric with a sparkline",
    )
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print the run log as JSON")
    show.set_defaults(handler=_lazy("trackhook.cli._show", "show_command"))

    plot = commands.add_parser(
        "plot",
        parents=[common],
        help="draw a run's metrics against their steps into a PNG (trackhook[plot])",
    )
    plot.add_argument("run_id", metavar="RUN_ID")
    plot.add_argument(
        "keys",
        nargs="*",
        metavar="KEY",
        help="metrics to draw (default: every metric tracked at two steps or more)",
    )
    plot.add_argument(
        "--all",
        action="store_true",
        help="also draw metrics tracked at a single step (hyperparameters, final scores)",
    )
    plot.add_argument("-o", "--out", metavar="FILE.png", help="default: RUN_ID.png")
    plot.set_defaults(handler=_lazy("trackhook.cli._plot", "plot_command"))

    trackers = commands.add_parser(
        "trackers",
        parents=[common],
        help="the installed trackers and their configuration fields",
    )
    trackers.set_defaults(handler=_lazy("trackhook.cli._trackers", "trackers_command"))

    sync = commands.add_parser(
        "sync",
        parents=[common],
        help="deliver undelivered values, close runs whose process died",
    )
    sync.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: every run")
    sync.add_argument(
        "--timeout",
        type=float,
        help="seconds each tracker gets per run (default: the larger of flush_timeout and 60)",
    )
    sync.set_defaults(handler=_lazy("trackhook.cli._sync", "sync_command"))
    return parser


_CONFIG_HELP = (
    "the configuration file to use (default: $TRACKHOOK_CONFIG, else trackhook.yaml or "
    "trackhook.yml in the working directory, else [tool.trackhook] in pyproject.toml)"
)
_PLAIN_HELP = (
    "plain text: no rich tables, colours or progress bars, even on a terminal with rich "
    "installed (output that is piped is always plain)"
)
_DEBUG_HELP = "on an error, show the full traceback instead of one line and a hint"


def _add_common_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """--config, --plain and --debug, accepted before the command and after it, with one help."""
    flag_default = False if default is None else default
    parser.add_argument("--config", metavar="FILE", default=default, help=_CONFIG_HELP)
    parser.add_argument("--plain", action="store_true", default=flag_default, help=_PLAIN_HELP)
    parser.add_argument("--debug", action="store_true", default=flag_default, help=_DEBUG_HELP)


def _lazy(module: str, function: str) -> Any:
    """A handler that imports its command's module only when that command runs."""

    def handler(arguments: argparse.Namespace) -> int:
        from importlib import import_module

        code: int = getattr(import_module(module), function)(arguments)
        return code

    return handler
