"""The hook specifications that a tracker plugin implements.

A tracker is a class registered under the entry-point group ``trackhook.trackers``. The core builds
one instance per configured tracker and calls its hooks **from that tracker's own delivery thread**,
never from the thread that called ``track_this`` (``trackhook_client_context`` is the exception: it
runs in the caller's thread, inside ``get_experiment_tracker_context``). Hooks of one tracker are
never called concurrently with each other, apart from that one.

An implementation may accept fewer arguments than the specification (pluggy's rule), but must not
give any argument a default value: pluggy would never pass it.

A hook that raises is retried with backoff (the values stay in the run's spool); the exception never
reaches the user's code unless the tracker is configured with ``on_error: raise``. That holds for
any exception, ``SystemExit`` and ``KeyboardInterrupt`` included: hooks run in a delivery thread,
where neither can come from the user. The one exception with another meaning is
``trackhook.ValuesRejected``, raised by a value hook for values the tracker refuses for their
content: those are set aside, counted as ``rejected`` in the run log, and never offered again.

**The first hook of a run in a process need not be** ``trackhook_open_run``. ``trackhook sync``
delivers the values left in the spool of a run whose process died, and closes it, from another
process that never opened the run: there ``trackhook_log_batch`` (or ``trackhook_log_metric`` /
``trackhook_log_param``) and ``trackhook_close_run`` may come first, on a fresh tracker instance.
Each of these hooks must therefore find the tracker's run of ``run.run_id`` on demand, and continue
it (never create a second run for the same run_id), exactly as ``trackhook_open_run`` would.
Only ``trackhook_client_context`` is always preceded by ``trackhook_open_run`` in the same process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from trackhook._markers import hookspec
from trackhook.records import FileRecord, MetricRecord, ParamRecord, ParamValue, RunInfo, Status

__all__ = [
    "trackhook_client_context",
    "trackhook_close_run",
    "trackhook_log_batch",
    "trackhook_log_file",
    "trackhook_log_metric",
    "trackhook_log_param",
    "trackhook_open_run",
]


@hookspec
def trackhook_open_run(run: RunInfo) -> Mapping[str, str] | None:
    """Open (or continue) the run ``run.run_id`` under the experiment named ``run.tag``.

    Called once per process before any value of the run is delivered; several processes that track
    into the same run_id each call it, one at a time. The same run_id must continue the same run.
    ``trackhook sync`` does not call it: see the module's note on the first hook of a run.

    :param run: the run to open.
    :return: facts worth recording in the run log under this tracker (for example the tracker's own
        run id or a URL), or ``None``. Never return credentials.

    .. versionadded:: 0.1
    """


@hookspec
def trackhook_log_metric(run: RunInfo, key: str, value: float, step: int) -> None:
    """Record the numeric ``value`` of ``key`` at ``step``.

    Called for each numeric value only when the tracker does not implement
    ``trackhook_log_batch``. Nested values arrive flattened to dotted keys (``eggs.ham``).

    :param run: the run the value belongs to.
    :param key: the flattened key, already made storable by the tracker's declared limits.
    :param value: an int or float (never a bool); may be NaN or infinite.
    :param step: a non-negative int.
    :raises trackhook.ValuesRejected: when the tracker refuses this value for its content (a
        value out of its range, a key it will never store): the value is set aside and never
        offered again. Raise anything else for an outage: the value is offered again later.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``ValuesRejected`` sets a refused value aside instead of retrying it forever.
    """


@hookspec
def trackhook_log_param(run: RunInfo, key: str, value: ParamValue, step: int) -> None:
    """Record the parameter ``value`` of ``key`` at ``step``.

    A parameter is a non-numeric value of ``track_this`` (str, bool, None or list), or any value
    of ``track_params``, an int or a float included. Called for each parameter only when the
    tracker does not implement ``trackhook_log_batch``. Trackers that declare
    ``TrackerLimits.param_key`` receive the key with the step already formatted into it
    (``spam_0``).

    :raises trackhook.ValuesRejected: when the tracker refuses this value for its content (text
        it cannot encode, a key it will never store): the value is set aside and never offered
        again. Raise anything else for an outage: the value is offered again later.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``ValuesRejected`` sets a refused value aside instead of retrying it forever; ``value``
        may be an int or a float (``trackhook.track_params``).
    """


@hookspec
def trackhook_log_batch(
    run: RunInfo, metrics: Sequence[MetricRecord], params: Sequence[ParamRecord]
) -> None:
    """Record many values in one call: the delivery thread's preferred path.

    Each batch respects the batch sizes the tracker declares in ``TrackerLimits``. When the call
    raises, the same batch is offered again later; when it returns, every value in it counts as
    delivered and is never offered again. It may be the first hook of the run in this process
    (``trackhook sync``): open or find the run of ``run.run_id`` then, as every log hook must.

    :param metrics: numeric values, each with its key, value, step and tracking time.
    :param params: parameters (non-numeric values, and every value of ``track_params``), each
        with its storable key, value, step and tracking time.
    :raises trackhook.ValuesRejected: when the tracker refuses some of the batch for its content
        (a step out of its range, an invalid key). The call must then have stored nothing of the
        batch: the core offers its two halves in turn, down to single values, sets aside each
        value refused alone (counted ``rejected`` in the run log, with the reason) and delivers
        the others. Raise anything else for an outage: the whole batch is offered again later.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``ValuesRejected`` sets refused values aside instead of retrying the batch forever.
    """


@hookspec
def trackhook_log_file(run: RunInfo, file: FileRecord) -> None:
    """Record a file or an image tracked at ``file.step`` (``trackhook.File``/``trackhook.Image``).

    ``file.path`` holds the content as it was when ``track_this`` returned; read or upload it, but
    never move, change or delete it. Called once per tracked file, in the order tracked, from the
    tracker's delivery thread like every value hook; it may be the first hook of the run in this
    process (``trackhook sync``), as for ``trackhook_log_batch``. A tracker that does not implement
    it counts these values as ``skipped`` in its delivery report.

    :param run: the run the file belongs to.
    :param file: the key (flattened, as for a metric), step, local path, file name, kind
        (``"file"`` or ``"image"``), SHA-256, size and tracking time.
    :raises trackhook.ValuesRejected: when the tracker refuses this file for its content (too
        large, a type it cannot store): it is set aside and never offered again. Raise anything
        else for an outage: the file is offered again later.

    .. versionadded:: 0.2
    """


@hookspec
def trackhook_close_run(run: RunInfo, status: Status) -> None:
    """Close the run after every value of it has been delivered.

    It may be the first hook of the run in this process: ``trackhook sync`` closes runs whose
    process died, from a process that never opened them. Find the run of ``run.run_id`` (continue
    it as ``trackhook_open_run`` would) and close that one.

    :param status: ``"SUCCESS"``, or ``"FAIL"`` when the user's block raised or the process that
        owned the run died before closing it (closed later by ``trackhook sync``).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def trackhook_client_context(run: RunInfo) -> AbstractContextManager[Any] | None:
    """Return a context manager that yields the tracker's native client for ``run``.

    Called in the user's thread by ``trackhook.get_experiment_tracker_context()``, only after
    ``trackhook_open_run`` of the run has returned in this process (the one hook that never comes
    first); a tracker may raise when asked for a run it has not opened. Leaving the context must
    restore any global state of the tracker library that entering it changed.

    .. versionadded:: 0.1
    """
