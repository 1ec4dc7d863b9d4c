"""Making a continued run visible: the same ``run_id`` again continues the run, on purpose.

Continuing is the contract (a restarted job resumes its run in every tracker), but a script re-run
with a fixed ``run_id`` doubles its curves without a word. So a run that was closed and is opened
again says so once, as a warning at the user's ``start_run`` line, and ``trackhook show`` lists
when it was continued (the run log's ``resumed_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from trackhook import formats
from trackhook.errors import RunContinuedWarning, warn_in_background

__all__ = ["describe_resumptions", "warn_if_closed_run_continues"]

_CLOSED = frozenset({"SUCCESS", "FAIL"})


def warn_if_closed_run_continues(run_log_path: Path, run_id: str) -> None:
    """Warn when the run log at ``run_log_path`` holds a closed run that is being opened again.

    Call it before the opening session writes the run log (which makes the status ``RUNNING``).
    A run still open in another process (a joined run, a second owner) is no surprise: no word.
    """
    document = _read(run_log_path)
    status = document.get(formats.STATUS)
    if status not in _CLOSED:
        return
    ended = _local_time(document.get(formats.END_TIME))
    closed = f"{status} at {ended}" if ended else status
    warn_in_background(
        f"run {run_id!r} was closed ({closed}) and is continued: "
        "what it tracks now joins its earlier values, in the run log and in every tracker, where "
        "a metric tracked again at the same steps shows those steps twice. To start a new run, "
        "give a new run_id, or none for a generated one",
        RunContinuedWarning,
    )


def describe_resumptions(document: Mapping[str, Any]) -> str | None:
    """``"continued 2 times, last at 2026-12-01 21:40:02"`` for a run log, or ``None``."""
    resumed = document.get(formats.RESUMED_AT)
    if not isinstance(resumed, list) or not resumed:
        return None
    times = "once" if len(resumed) == 1 else f"{len(resumed)} times"
    last = _local_time(resumed[-1])
    return f"continued {times}" + (f", last at {last}" if last else "")


def _read(path: Path) -> dict[str, Any]:
    """The run log without its values (a long run holds millions), or ``{}``."""
    from trackhook.runlog import read_run_log_header

    try:
        return read_run_log_header(path).header if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # unreadable: the opening session replaces it (or refuses a newer format)


def _local_time(text: object) -> str | None:
    """An ISO time of the run log in local time to the second, as ``trackhook show`` writes."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
