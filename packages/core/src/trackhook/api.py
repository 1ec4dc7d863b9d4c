"""The user's API: ``start_run``, ``track_this``, ``track_env``, ``get_experiment_tracker_context``.

The active run is the innermost ``start_run`` of the calling thread (a context variable), so that
trials run in parallel threads each track into their own run; a thread without one of its own
(started inside a block, say) tracks into the innermost run open in the process. A run opened
implicitly, by ``track_this`` outside any ``start_run``, takes its id and tag from
``TRACKHOOK_RUN_ID`` / ``TRACKHOOK_TAG`` and closes when the main thread ends.

Child processes (a multiprocessing pool, a shell task running Python) join a run through the
variables of ``Run.child_environment()``: they only spool their values, write-through; the owning
process delivers their spool files with its own, closes the run in its trackers and writes its run
log. While runs are open, ``os.environ`` holds the variables of the one opened last that is still
open, whatever the order in which runs in threads open and close; once the last one closes, the
variables are back to what they were. A forked child gets those of the run of the thread that
forked it. A run this process has closed is never reopened by the implicit run through a variable
left in the environment: ``track_this`` opens a new run instead, and warns.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from trackhook.envvars import TRACK_PREFIX, tracked_variables
from trackhook.errors import InvalidValueError, warn_in_background
from trackhook.records import Status
from trackhook.run import Run, owner_token
from trackhook.runid import check_run_id, check_tag, generate_run_id
from trackhook.variables import (
    CHILD_VARIABLES,
    OWNER_VARIABLE,
    RUN_ID_VARIABLE,
    STORE_VARIABLE,
    TAG_VARIABLE,
)

__all__ = [
    "close_run",
    "get_experiment_tracker_context",
    "open_run",
    "start_run",
    "track_env",
    "track_params",
    "track_this",
    "tracking_into",
]


class _ChildEnvironment:
    """The ``TRACKHOOK_*`` variables that ``os.environ`` shows child processes.

    Runs open and close in any order in parallel threads: the variables are always those of the
    run opened last that is still open, and once the last run closes they are back to what they
    were before the first one opened. A variable that someone else has changed since trackhook
    last set it is theirs: it is left as they set it. Called under ``_lock``.
    """

    def __init__(self) -> None:
        self._open: list[tuple[Run, dict[str, str]]] = []
        self._before: dict[str, str | None] = {}
        self._written: dict[str, str | None] = {}
        """What trackhook last left in ``os.environ``, by name."""

    def opened(self, run: Run) -> None:
        if not self._open:
            self._before = {name: os.environ.get(name) for name in CHILD_VARIABLES}
            self._written = dict(self._before)
        self._open.append((run, run.child_environment()))
        self._show_latest()

    def closed(self, run: Run) -> None:
        remaining = [(other, variables) for other, variables in self._open if other is not run]
        if len(remaining) < len(self._open):
            self._open = remaining
            self._show_latest()

    def show_only(self, run: Run) -> None:
        """Show ``run``'s variables as if no other run were open: in a forked child."""
        if self._open:
            self._open = [(run, run.child_environment())]
            self._show_latest()
        else:
            self.opened(run)

    def _show_latest(self) -> None:
        latest = self._open[-1][1] if self._open else {}
        for name in CHILD_VARIABLES:
            if os.environ.get(name) != self._written[name]:
                continue
            value = latest.get(name, self._before[name])
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
            self._written[name] = value


_lock = threading.RLock()
_active: list[Run] = []
"""Open ``start_run`` runs, innermost last: for threads that have no run of their own."""
_context_run: ContextVar[Run | None] = ContextVar("trackhook_run", default=None)
"""The run of this thread's (or task's) innermost ``start_run``, so that concurrent trials in
threads each track into their own run."""
_child_environment = _ChildEnvironment()
_closed_here: set[str] = set()
"""The run_ids of the runs this process owned and has closed: the implicit run never reopens one."""
_opened_by_call: list[Run] = []
"""Runs of ``open_run`` not closed yet: the interpreter's exit closes them as ``FAIL``."""
_implicit: Run | None = None
_inherited_config: Any = None
_uncaught_exception = False
_excepthook_installed = False


@contextmanager
def start_run(run_id: str | None = None, tag: str = "", *, config: Any = None) -> Iterator[Run]:
    """Open a run in every configured tracker; close it, and write its run log, on exit.

    :param run_id: names the run; a readable unique id is generated when none is given. The same
        run_id continues the same run in the trackers.
    :param tag: names the experiment (MLflow) or project (W&B); empty: the tracker's default.
    :param config: a path, a dict or a ``TrackhookConfig``; default: ``TRACKHOOK_CONFIG``, then
        ``trackhook.yaml``, then ``[tool.trackhook]`` in ``pyproject.toml``.
    :raises trackhook.ConfigError: the configuration is invalid or names an unknown tracker.
    :raises trackhook.InvalidValueError: ``run_id`` or ``tag`` cannot name a run; nothing has
        started.

    The run closes with status ``SUCCESS``, or ``FAIL`` when the block raised (the exception still
    propagates). ``TRACKHOOK_TRACK_*`` environment variables are tracked at close. While the block
    runs, the run is this thread's, and ``os.environ`` holds its ``Run.child_environment()``
    unless a run opened later is still open: give a subprocess those variables explicitly to be
    sure it joins this run.
    """
    run = _open(run_id, tag, config)
    token = _context_run.set(run)
    status: Status = "SUCCESS"
    try:
        yield run
    except BaseException:
        status = "FAIL"
        raise
    finally:
        _context_run.reset(token)
        _close(run, status, propagate_tracker_errors=status == "SUCCESS")


def open_run(run_id: str | None = None, tag: str = "", *, config: Any = None) -> Run:
    """Open a run that stays open until ``close_run``: for code whose start and end are two calls.

    A training framework tells its logger or callback that training starts and that it ended in
    two separate calls, never around one block: the bridges of ``trackhook.integrations`` open
    their run here. Arguments and errors as for ``start_run``. Until it closes, the run is the
    active run of every thread that has no ``start_run`` of its own, so ``track_this`` in a
    training step lands in it. A run still open when the interpreter exits closes as ``FAIL``:
    whatever was to report its end never did.
    """
    run = _open(run_id, tag, config, on_tracker_opened=_close_runs_left_open_at_exit)
    with _lock:
        _opened_by_call.append(run)
    _close_runs_left_open_at_exit()
    return run


def close_run(run: Run, status: Status) -> None:
    """Close a run of ``open_run`` with ``status`` (``SUCCESS`` or ``FAIL``); a closed run stays
    as it is.

    :raises trackhook.TrackerDeliveryError: closing as ``SUCCESS``, a tracker configured with
        ``on_error: raise`` failed.
    """
    with _lock:
        if run in _opened_by_call:
            _opened_by_call.remove(run)
    if not run.closed:
        _close(run, status, propagate_tracker_errors=status == "SUCCESS")


@contextmanager
def tracking_into(run: Run) -> Iterator[Run]:
    """Make ``run`` this thread's active run for the block, whichever run the thread has.

    For code that tracks on a run's behalf from hooks a framework calls: ``track_this`` and its
    kin inside the block land in ``run``, even under a ``start_run`` of the calling thread.
    """
    token = _context_run.set(run)
    try:
        yield run
    finally:
        _context_run.reset(token)


def _open(
    run_id: str | None,
    tag: str,
    config: Any,
    on_tracker_opened: Callable[[], None] | None = None,
) -> Run:
    """Load the configuration, open the run in its trackers and make it the innermost one."""
    from trackhook.config import load_config

    loaded = load_config(config)
    run = Run(
        run_id or generate_run_id(), tag, loaded, owner=True, on_tracker_opened=on_tracker_opened
    ).open()
    with _lock:
        _active.append(run)
        _child_environment.opened(run)
    return run


def _close(
    run: Run, status: Status, *, propagate_tracker_errors: bool, at_exit: bool = False
) -> None:
    with _lock:
        if run in _active:
            _active.remove(run)
        _forget(run)
    _finish(run, status, propagate_tracker_errors=propagate_tracker_errors, at_exit=at_exit)


def _close_runs_left_open_at_exit() -> None:
    """(Re-)register the exit handler that closes the runs of ``open_run`` left open.

    Registered again once a tracker has opened a run, for the reason given in
    ``_close_implicit_run_before_trackers_exit_handlers``; once only, however many runs opened.
    """
    atexit.unregister(_close_runs_left_open)
    atexit.register(_close_runs_left_open)


def _close_runs_left_open() -> None:
    """At exit: a run of ``open_run`` still open never heard that its training ended: ``FAIL``."""
    with _lock:
        runs = list(_opened_by_call)
        _opened_by_call.clear()
    for run in runs:
        if not run.closed:
            _close(run, "FAIL", propagate_tracker_errors=False, at_exit=True)


def _forget(run: Run) -> None:
    """Take a closing run out of what child processes see; under ``_lock``."""
    _child_environment.closed(run)
    if run.owner:
        _closed_here.add(run.run_id)


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


def track_this(step: int = 0, **values: Any) -> None:
    """Track ``values`` at ``step`` in the active run (opened from the environment if none is).

    A value may be an int, float, str, bool, None, a list, a nested dict or a pydantic model.
    Numbers become metrics; anything else becomes a parameter. A ``trackhook.File`` or
    ``trackhook.Image`` (at a key or in a dict) is held in the run store before this returns: the
    caller pays its copy (or PNG encoding), and changing the original afterwards changes nothing.
    Returns at once otherwise: the trackers receive the values in the background.

    :raises trackhook.InvalidValueError: a value cannot be tracked (a file or image that cannot be
        read, named with its path) or the step is not a non-negative int; nothing of this call is
        recorded, and earlier values are kept.
    """
    _current_run().track(step, values)


def track_params(step: int = 0, **values: Any) -> None:
    """Track ``values`` at ``step`` as parameters, whatever their type: numbers included.

    For hyperparameters (a learning rate, a batch size, a framework's training arguments) that
    belong with a tracker's parameters (MLflow params, W&B config) rather than its metrics. Values
    are checked, normalised and flattened as by ``track_this``, and the run log records them in
    the same place and shape; only what trackers receive differs: every value, an int or a float
    included, arrives through ``trackhook_log_param`` (or the ``params`` of
    ``trackhook_log_batch``), never as a metric.

    :raises trackhook.InvalidValueError: a value cannot be tracked or the step is not a
        non-negative int; nothing of this call is recorded, and earlier values are kept.
    """
    _current_run().track(step, values, as_params=True)


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
                warn_in_background(f"the variable {name} was not tracked: {error}")
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
    return _run_of_this_thread()


def _current_run() -> Run:
    run = _run_of_this_thread()
    if run is None:
        with _lock:
            run = _implicit_run()
    return run


def _implicit_run() -> Run:
    """The implicit run, opened from the environment on first use; under ``_lock``."""
    global _implicit
    if _implicit is None:
        _implicit = _open_implicit_run()
        _close_implicit_run_at_exit()
        _watch_for_uncaught_exceptions()
    return _implicit


def _open_implicit_run() -> Run:
    from trackhook.config import load_config

    loaded = _inherited_config if _inherited_config is not None else load_config()
    owner = os.environ.get(OWNER_VARIABLE)
    joined = bool(owner) and owner != owner_token()
    if joined and os.environ.get(STORE_VARIABLE):
        # spool where the owner looks, whatever this process's own configuration says
        store = os.environ[STORE_VARIABLE]
        loaded = replace(loaded, config=loaded.config.model_copy(update={"run_log_store": store}))
    tag = check_tag(os.environ.get(TAG_VARIABLE, ""), source=f"${TAG_VARIABLE}")
    run = Run(
        _implicit_run_id(joined),
        tag,
        loaded,
        owner=not joined,
        on_tracker_opened=_close_implicit_run_before_trackers_exit_handlers,
    ).open()
    if not joined:
        _child_environment.opened(run)
    return run


def _implicit_run_id(joined: bool) -> str:
    """``TRACKHOOK_RUN_ID``, unless it names a run this process has closed; else a new id."""
    given = os.environ.get(RUN_ID_VARIABLE)
    if not given:
        return generate_run_id()
    run_id = check_run_id(given, source=f"${RUN_ID_VARIABLE}")
    if joined or run_id not in _closed_here:
        return run_id
    new_id = generate_run_id()
    warn_in_background(
        f"${RUN_ID_VARIABLE} names run {run_id!r}, which this process has closed; "
        f"track_this outside start_run tracks into a new run, {new_id!r}. To continue "
        f"{run_id!r}, open it again explicitly: trackhook.start_run(run_id={run_id!r})"
    )
    return new_id


def _close_implicit_run_at_exit() -> None:
    """Close the implicit run when the main thread ends, before the interpreter shuts down.

    ``threading._register_atexit`` (what ``concurrent.futures`` uses) calls back when the main
    thread has ended, before the interpreter joins non-daemon threads and runs ``atexit``
    handlers. A tracker library still opening then (the script tracked and ended at once) can
    still import, start threads (refused in ``atexit`` handlers since Python 3.12) and register
    exit handlers of its own. ``concurrent.futures.thread`` is imported first: its exit hook,
    which stops every executor and refuses new imports of the module during shutdown, is then
    registered before this one and runs after it (last registered, first called).

    The ``atexit`` handler is the fallback: where that private function is missing, for a run
    opened once the shutdown has begun, and while other non-daemon threads still run when the
    main thread ends: they may still track, and the interpreter waits for them before it runs
    ``atexit`` handlers.
    """
    atexit.register(_close_implicit_run)
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    # RuntimeError "can't register atexit after shutdown": the shutdown has begun (a thread
    # tracked first after the main thread ended), and the atexit handler closes the run
    with contextlib.suppress(RuntimeError):
        importlib.import_module("concurrent.futures.thread")
        register(_close_implicit_run_unless_threads_still_run)


def _close_implicit_run_unless_threads_still_run() -> None:
    """Close the implicit run as any run closes, now that the main thread has ended."""
    current = threading.current_thread()
    if any(not thread.daemon and thread is not current for thread in threading.enumerate()):
        return  # they may still track: the atexit handler closes the run once they have ended
    try:
        _close_implicit_run(at_exit=False)
    except Exception:
        # Raised from here, it would keep the shutdown from stopping executors and joining
        # threads: it is reported as atexit reports its handlers' exceptions, and the shutdown
        # goes on.
        print("Exception ignored while trackhook closed the implicit run:", file=sys.stderr)
        traceback.print_exc()


def _close_implicit_run(*, at_exit: bool = True) -> None:
    """Close the implicit run, if it is open; ``at_exit``: from an ``atexit`` handler."""
    global _implicit
    with _lock:
        run, _implicit = _implicit, None
        if run is None:
            return
        _forget(run)
    status: Status = "FAIL" if _uncaught_exception else "SUCCESS"
    _finish(run, status, propagate_tracker_errors=False, at_exit=at_exit)


def _close_implicit_run_before_trackers_exit_handlers() -> None:
    """Register the implicit run's exit handler again, once a tracker has opened the run.

    Exit handlers run last registered, first called. A tracker library may register its own when
    its run opens (W&B finishes its run at exit): when the run closes in the ``atexit`` fallback,
    trackhook's handler must come after it, so that it runs first and delivers the last values
    into a run that is still open.
    """
    if _implicit is not None:
        # Not unregistered first: if the interpreter is already running its exit handlers, the
        # new registration may come too late to be called, and the first one must still be.
        # Closing is idempotent.
        atexit.register(_close_implicit_run)


def _watch_for_uncaught_exceptions() -> None:
    """Note an uncaught exception, which closes the implicit run as ``FAIL``; installed once."""
    global _excepthook_installed
    if _excepthook_installed:
        return
    _excepthook_installed = True
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
    """A forked child joins the run of the thread that forked it, and leaves the parent's alone.

    It must not write into its parent's spool nor close its parent's run. Its only thread is a
    copy of the forking thread, context variables included: the run that thread tracks into is
    the one the child's values belong to, whichever run of the parent opened last.
    """
    global _implicit, _inherited_config, _lock, _child_environment
    joined = _run_of_this_thread()  # without _lock: another thread may have held it at fork
    if joined is not None:
        _inherited_config = joined._loaded
        _child_environment.show_only(joined)
    for run in [*_active, *([_implicit] if _implicit is not None else [])]:
        run.abandon_after_fork()
    _active.clear()
    _opened_by_call.clear()  # the parent closes its own, never this child at its exit
    _implicit = None
    _child_environment = _ChildEnvironment()
    _lock = threading.RLock()


def _run_of_this_thread() -> Run | None:
    """Without ``_lock``: on every ``track_this``. Each read below is one step under the GIL,
    and a run closed meanwhile refuses the values with a clear error, as it would a moment later.
    """
    own = _context_run.get()
    if own is not None and not own.closed:
        return own
    try:
        return _active[-1]
    except IndexError:  # none, or the last one closed by another thread since
        return _implicit


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_flush_before_fork, after_in_child=_forget_parent_runs_in_child)
