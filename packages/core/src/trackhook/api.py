"""The user's API: ``start_run``, ``track_this``, ``track_env``, ``get_experiment_tracker_context``.

The active run is the innermost ``start_run`` of the calling thread (a context variable), so that
trials run in parallel threads each track into their own run; a thread without one of its own
(started inside a block, say) tracks into the innermost run open in the process. A run opened
implicitly, by ``track_this`` outside any ``start_run``, takes its id and tag from
``TRACKHOOK_RUN_ID`` / ``TRACKHOOK_TAG``, exports itself to child processes as ``start_run``
does, and closes when the interpreter exits.

``start_run`` exports ``TRACKHOOK_RUN_ID``, ``TRACKHOOK_TAG``, ``TRACKHOOK_RUN_OWNER``,
``TRACKHOOK_RUN_LOG_STORE`` (and ``TRACKHOOK_CONFIG`` when the configuration came from a file) for
the duration of the block, so that child processes (a multiprocessing pool, a shell task running
Python) join the same run: they only spool their values, write-through; the owning process delivers
their spool files with its own, closes the run in its trackers and writes its run log.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackhook.envvars import TRACK_PREFIX, tracked_variables
from trackhook.errors import InvalidValueError, TrackhookWarning
from trackhook.records import Status
from trackhook.run import Run
from trackhook.runid import generate_run_id

if TYPE_CHECKING:
    from trackhook.config import LoadedConfig

__all__ = ["get_experiment_tracker_context", "start_run", "track_env", "track_this"]

RUN_ID_ENV = "TRACKHOOK_RUN_ID"
TAG_ENV = "TRACKHOOK_TAG"
OWNER_ENV = "TRACKHOOK_RUN_OWNER"
CONFIG_ENV = "TRACKHOOK_CONFIG"
STORE_ENV = "TRACKHOOK_RUN_LOG_STORE"

_lock = threading.RLock()
_active: list[Run] = []
"""Open ``start_run`` runs, innermost last: for threads that have no run of their own."""
_context_run: ContextVar[Run | None] = ContextVar("trackhook_run", default=None)
"""The run of this thread's (or task's) innermost ``start_run``, so that concurrent trials in
threads each track into their own run."""
_implicit: Run | None = None
_inherited_config: Any = None
_uncaught_exception = False


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def start_run(run_id: str | None = None, tag: str = "", *, config: Any = None) -> Iterator[Run]:
    """Open a run in every configured tracker; close it, and write its run log, on exit.

    :param run_id: names the run; a readable unique id is generated when none is given. The same
        run_id continues the same run in the trackers.
    :param tag: names the experiment (MLflow) or project (W&B); empty: the tracker's default.
    :param config: a path, a dict or a ``TrackhookConfig``; default: ``TRACKHOOK_CONFIG``, then
        ``trackhook.yaml``, then ``[tool.trackhook]`` in ``pyproject.toml``.
    :raises trackhook.ConfigError: the configuration is invalid or names an unknown tracker.

    The run closes with status ``SUCCESS``, or ``FAIL`` when the block raised (the exception still
    propagates). ``TRACKHOOK_TRACK_*`` environment variables are tracked at close.
    """
    from trackhook.config import load_config

    loaded = load_config(config)
    run = Run(run_id or generate_run_id(), tag, loaded, owner=True)
    exported = _export_for_children(run, loaded)
    previous = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    with _lock:
        _active.append(run)
    token = _context_run.set(run)
    status: Status = "SUCCESS"
    try:
        yield run
    except BaseException:
        status = "FAIL"
        raise
    finally:
        _context_run.reset(token)
        with _lock:
            if run in _active:
                _active.remove(run)
        _restore_environment(exported, previous)
        _finish(run, status, propagate_tracker_errors=status == "SUCCESS")


def _export_for_children(run: Run, loaded: LoadedConfig) -> dict[str, str]:
    """The variables through which child processes join ``run``."""
    exported = {
        RUN_ID_ENV: run.run_id,
        TAG_ENV: run.tag,
        OWNER_ENV: _owner_token(),
        STORE_ENV: str(Path(loaded.config.run_log_store).resolve()),
    }
    if loaded.path is not None:
        exported[CONFIG_ENV] = str(loaded.path.resolve())
    return exported


def _finish(
    run: Run, status: Status, *, propagate_tracker_errors: bool, at_exit: bool = False
) -> None:
    """Track the environment's variables, then close: the run closes whatever they hold."""
    try:
        if run.owner:
            _track_environment(run, os.environ, at_close=True)
    finally:
        try:
            run.close(status, at_exit=at_exit)
        except Exception:
            if propagate_tracker_errors:
                raise


def _restore_environment(exported: Mapping[str, str], previous: Mapping[str, str | None]) -> None:
    """Put back what ``start_run`` replaced, unless something else has changed it since."""
    for name, value in previous.items():
        if os.environ.get(name) != exported[name]:
            continue
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def track_this(step: int = 0, **values: Any) -> None:
    """Track ``values`` at ``step`` in the active run (opened from the environment if none is).

    A value may be an int, float, str, bool, None, a list, a nested dict or a pydantic model.
    Numbers become metrics; anything else becomes a parameter. Returns at once: the trackers
    receive the values in the background.

    :raises trackhook.InvalidValueError: a value cannot be tracked or the step is not a
        non-negative int; nothing of this call is recorded, and earlier values are kept.
    """
    _current_run().track(step, values)


def track_env(environ: Mapping[str, str] | None = None) -> None:
    """Track the ``TRACKHOOK_TRACK_*`` variables of ``environ`` (default ``os.environ``) now.

    A variable already tracked with the same value is not tracked again at close.

    :raises trackhook.InvalidValueError: a variable's value cannot be tracked (the error names it);
        the variables before it are tracked.
    """
    _track_environment(_current_run(), os.environ if environ is None else environ)


def _track_environment(run: Run, environ: Mapping[str, str], *, at_close: bool = False) -> None:
    for name, text in environ.items():
        if not name.startswith(TRACK_PREFIX) or run.tracked_environment.get(name) == text:
            continue
        for step, values in tracked_variables({name: text}).items():
            try:
                run.track(step, values)
            except InvalidValueError as error:
                if not at_close:
                    raise
                warnings.warn(
                    f"trackhook: the variable {name} was not tracked: {error}",
                    TrackhookWarning,
                    stacklevel=3,
                )
            run.tracked_environment[name] = text


def get_experiment_tracker_context(name: str | None = None) -> AbstractContextManager[Any]:
    """The native client of the configured tracker (of tracker ``name`` when several are).

    Inside the context, the tracker library's own calls land in the active run (for MLflow, the
    context yields its ``ActiveRun``). Without a run or a real tracker:
    ``contextlib.nullcontext()``.
    """
    run = active_run()
    if run is None:
        return nullcontext()
    context: AbstractContextManager[Any] = run.client_context_of(name)
    return context


def active_run() -> Run | None:
    """The run that ``track_this`` would track into now, if one is open."""
    own = _context_run.get()
    if own is not None and not own.closed:
        return own
    with _lock:
        return _active[-1] if _active else _implicit


def _current_run() -> Run:
    run = active_run()
    if run is not None:
        return run
    with _lock:
        return _implicit_run()


def _implicit_run() -> Run:
    global _implicit
    if _implicit is None:
        from trackhook.config import load_config

        loaded = _inherited_config if _inherited_config is not None else load_config()
        owner_token = os.environ.get(OWNER_ENV)
        joined = bool(owner_token) and owner_token != _owner_token()
        if joined and os.environ.get(STORE_ENV):
            # spool where the owner looks, whatever this process's own configuration says
            store = os.environ[STORE_ENV]
            loaded = replace(
                loaded, config=loaded.config.model_copy(update={"run_log_store": store})
            )
        run_id = os.environ.get(RUN_ID_ENV) or generate_run_id()
        _implicit = Run(
            run_id,
            os.environ.get(TAG_ENV, ""),
            loaded,
            owner=not joined,
            on_tracker_opened=_close_implicit_run_before_trackers_exit_handlers,
        )
        if not joined:  # for the life of the process: its children join this run
            os.environ.update(_export_for_children(_implicit, loaded))
        atexit.register(_close_implicit_run)
        _watch_for_uncaught_exceptions()
    return _implicit


def _close_implicit_run() -> None:
    global _implicit
    run, _implicit = _implicit, None
    if run is not None:
        status: Status = "FAIL" if _uncaught_exception else "SUCCESS"
        _finish(run, status, propagate_tracker_errors=False, at_exit=True)


def _close_implicit_run_before_trackers_exit_handlers() -> None:
    """Register the implicit run's exit handler again, once a tracker has opened the run.

    Exit handlers run last registered, first called. A tracker library may register its own when
    its run opens (W&B finishes its run at exit): trackhook's must come after it, so that it runs
    first and delivers the last values into a run that is still open.
    """
    if _implicit is not None:
        # Not unregistered first: if the interpreter is already running its exit handlers, the
        # new registration may come too late to be called, and the first one must still be.
        # Closing is idempotent.
        atexit.register(_close_implicit_run)


def _watch_for_uncaught_exceptions() -> None:
    previous_hook = sys.excepthook

    def note_and_report(kind: Any, value: Any, traceback: Any) -> None:
        global _uncaught_exception
        _uncaught_exception = True
        previous_hook(kind, value, traceback)

    sys.excepthook = note_and_report


def _flush_before_fork() -> None:
    with _lock:
        runs = [*_active, *([_implicit] if _implicit is not None else [])]
    for run in runs:
        run.flush()


def _forget_parent_runs_in_child() -> None:
    """A forked child must not write into its parent's spool nor close its parent's run."""
    global _implicit, _inherited_config, _lock
    runs = [*_active, *([_implicit] if _implicit is not None else [])]
    if runs:
        _inherited_config = runs[-1]._loaded
    for run in runs:
        run.abandon_after_fork()
    _active.clear()
    _implicit = None
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_flush_before_fork, after_in_child=_forget_parent_runs_in_child)
