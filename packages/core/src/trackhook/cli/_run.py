"""``trackhook run -- COMMAND``: a command as a run.

This process owns the run (``trackhook.start_run``), so the command's Python children join it
through the ``TRACKHOOK_*`` variables of ``Run.child_environment()``, given in the command's
environment: they only spool their values, and this process delivers them, closes the run and
writes its run log.

Shell tasks track by exporting ``TRACKHOOK_TRACK_<key>[_STEP_<n>]`` variables, which die with the
shell. To collect them, the child gets ``BASH_ENV`` pointing at a small rc file that bash sources
when it starts non-interactively; it installs ``trap ... EXIT`` that writes the shell's exported
``TRACKHOOK_TRACK_*`` variables (and nothing else of its environment, which may hold secrets) to a
private folder, with bash builtins only. After the command ends, the dumped variables that differ
from what the command was given are tracked.

Which shells dump: the rc file hands the user's own ``BASH_ENV`` (if any) back to the shell's
children, so a bash started by that bash does not dump; only the outermost bash of each chain
does. A bash started by a non-shell child (Python's ``subprocess``) is again outermost in its chain.
When several dump, they are merged in the order they ended.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from trackhook.cli._errors import CommandError
from trackhook.envvars import TRACK_PREFIX
from trackhook.errors import InvalidValueError
from trackhook.runid import check_run_id, check_tag

__all__ = ["exported_variables", "run_command"]

USER_BASH_ENV = "TRACKHOOK_USER_BASH_ENV"
"""The user's own ``BASH_ENV``, passed through the rc file to the shell's children."""

_RC = """\
# Written by `trackhook run`: sourced by bash (BASH_ENV) when it starts non-interactively.
if [ -n "${{{user}:-}}" ]; then
  export BASH_ENV="${user}"
  unset {user}
  . "$BASH_ENV"
else
  unset BASH_ENV
fi
trackhook_dump_env() {{
  local IFS=$' \\t\\n' name
  for name in $(compgen -e); do
    case $name in {prefix}*) printf '%s=%s\\0' "$name" "${{!name}}" ;; esac
  done > {dump}/env.$$ 2>/dev/null || true
}}
trap trackhook_dump_env EXIT
"""


class _CommandFailed(Exception):
    """The command exited with a non-zero code: the run closes as FAIL, without a traceback."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"the command exited with code {code}")


def run_command(arguments: argparse.Namespace) -> int:
    command = list(arguments.child)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CommandError(
            "no command to run",
            "put the command after `--`: trackhook run -- python train.py --epochs 3",
        )
    _check_run_names(arguments.run_id, arguments.tag)
    _check_runnable(command[0])
    import trackhook

    code = 0
    run = None
    try:
        with trackhook.start_run(arguments.run_id, arguments.tag, config=arguments.config) as run:
            code = _run_child(command, run.child_environment())
            if code != 0:
                raise _CommandFailed(code)
    except _CommandFailed as failed:
        code = failed.code
    if run is not None and not arguments.quiet:
        print(
            f"trackhook: run {run.run_id} {run.status} (exit code {code}); run log: "
            f"{run.run_log_path}",
            file=sys.stderr,
        )
    return code


def _check_run_names(run_id: str | None, tag: str) -> None:
    """Refuse a ``--run-id`` or ``--tag`` that cannot name a run, before a run is opened."""
    try:
        if run_id:  # empty, as for start_run: a generated one
            check_run_id(run_id, source="--run-id")
        check_tag(tag, source="--tag")
    except InvalidValueError as error:
        option = error.key.replace("_", "-")
        raise CommandError(error.reason, f"give another --{option}") from None


def _check_runnable(program: str) -> None:
    """Refuse a command that cannot start, before a run is opened for it."""
    if os.sep in program:
        found: str | None = program if os.path.isfile(program) else None
    else:
        found = shutil.which(program)
    if found is None:
        raise CommandError(
            f"command not found: {program!r}",
            "check its spelling and the PATH, or give its path",
        )
    if not os.access(found, os.X_OK):
        raise CommandError(
            f"not executable: {found!r}", f"make it executable (chmod +x {shlex.quote(found)})"
        )


def _run_child(command: list[str], run_variables: Mapping[str, str]) -> int:
    """Run ``command`` in the run whose ``Run.child_environment()`` is ``run_variables``."""
    import trackhook

    with tempfile.TemporaryDirectory(prefix="trackhook-run-") as folder:
        dumps = Path(folder)
        environment = {**os.environ, **run_variables}
        rc = dumps / "bash_env.sh"
        rc.write_text(
            _RC.format(user=USER_BASH_ENV, dump=shlex.quote(folder), prefix=TRACK_PREFIX),
            encoding="utf-8",
        )
        if environment.get("BASH_ENV"):
            environment[USER_BASH_ENV] = environment["BASH_ENV"]
        environment["BASH_ENV"] = str(rc)
        child = subprocess.Popen(command, env=environment)
        with _forwarding_termination(child):
            try:
                returned = child.wait()
            except KeyboardInterrupt:
                # the terminal sent SIGINT to the whole foreground group: the child has it too
                returned = child.wait()
        exported = exported_variables(dumps, environment)
    if exported:
        trackhook.track_env(exported)
        # The run's close tracks this process's own TRACKHOOK_TRACK_* variables: the values the
        # command gave them replace those, so the stale ones must not be tracked after them.
        for name in exported:
            os.environ.pop(name, None)
    return 128 - returned if returned < 0 else returned


@contextmanager
def _forwarding_termination(child: subprocess.Popen[bytes]) -> Iterator[None]:
    """A SIGTERM or SIGHUP to ``trackhook run`` reaches the command, which then ends the run."""

    def forward(number: int, frame: FrameType | None) -> None:
        del frame
        child.send_signal(number)

    previous = {
        number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exported_variables(dumps: Path, given: Mapping[str, str]) -> dict[str, str]:
    """The ``TRACKHOOK_TRACK_*`` variables the shells dumped that differ from ``given``."""
    merged: dict[str, str] = {}
    files = sorted(dumps.glob("env.*"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    for path in files:
        for item in path.read_bytes().split(b"\0"):
            name, separator, value = item.decode("utf-8", "surrogateescape").partition("=")
            if separator and name.startswith(TRACK_PREFIX) and given.get(name) != value:
                merged[name] = value
    return merged
