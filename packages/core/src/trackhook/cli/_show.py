"""``trackhook runs`` and ``trackhook show``: the run log store, for people."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from trackhook import formats
from trackhook.cli._output import Output, fits_unicode
from trackhook.cli._runlogs import KeySummary, RunView, find_run, load_runs, store_of
from trackhook.held import is_file_record
from trackhook.resume import describe_resumptions

__all__ = ["format_duration", "format_size", "runs_command", "show_command", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"
_ASCII_BARS = "_.-:=+*#"
SPARKLINE_WIDTH = 40
_MAX_CELL = 60


def runs_command(arguments: argparse.Namespace) -> int:
    runs = load_runs(store_of(arguments.config))
    if arguments.limit is not None:
        runs = runs[: max(arguments.limit, 0)]
    out = Output(plain=arguments.plain)
    if not runs:
        out.line("no runs in the run log store; `trackhook run -- COMMAND` makes one")
        return 0
    columns = ["run id", "tag", "status", "start", "duration", "trackers", "values", "undelivered"]
    rows = [_unreadable_row(run) if run.unreadable else _row(run) for run in runs]
    out.table(columns, rows, right=["duration", "values", "undelivered"])
    for run in runs:
        if run.unreadable:
            out.line(f"{run.run_id}: {run.unreadable}")
    return 0


def _row(run: RunView) -> list[str]:
    return [
        run.run_id,
        run.tag or "-",
        run.status,
        _local(run.started),
        format_duration(run.duration),
        ",".join(str(item.get(formats.TRACKER_NAME)) for item in run.trackers) or "-",
        str(run.value_count),
        str(run.undelivered),
    ]


def _unreadable_row(run: RunView) -> list[str]:
    """A run whose run log a newer trackhook wrote: listed, its reason said below the table."""
    return [run.run_id, "-", "unreadable", "-", "-", "-", "-", "-"]


def show_command(arguments: argparse.Namespace) -> int:
    run = find_run(store_of(arguments.config), arguments.run_id)
    if arguments.json:
        run.write_json(sys.stdout)
        return 0
    show_run(run, Output(plain=arguments.plain))
    return 0


def show_run(run: RunView, out: Output) -> None:
    out.heading(f"run {run.run_id}")
    out.line(
        f"tag {run.tag or '-'}   status {run.status}   started {_local(run.started)}   "
        f"duration {format_duration(run.duration)}"
    )
    out.line(f"run log {run.path}")
    resumed = describe_resumptions(run.document)
    if resumed is not None:
        out.line(resumed)
    for item in run.trackers:
        delivery = item.get(formats.TRACKER_DELIVERY) or {}
        line = (
            f"tracker {item.get(formats.TRACKER_NAME)} ({item.get(formats.TRACKER_TYPE)}): "
            f"{delivery.get(formats.DELIVERED, 0)} delivered, "
            f"{delivery.get(formats.UNDELIVERED, 0)} undelivered"
        )
        if delivery.get(formats.REJECTED):
            line += f", {delivery[formats.REJECTED]} rejected"
        if delivery.get(formats.LAST_ERROR):
            line += f", last error: {delivery[formats.LAST_ERROR]}"
        elif delivery.get(formats.RECOVERED_ERROR):
            line += f", recovered from: {delivery[formats.RECOVERED_ERROR]}"
        out.line(line)
        for reason_line in _rejection_lines(delivery):
            out.line(reason_line)
    for trouble in _spool_trouble_lines(run):
        out.line(trouble)
    summaries = list(run.summaries())
    files = [summary for summary in summaries if is_file_record(summary.last)]
    params = [
        s for s in summaries if (s.tracked_as_param or not s.numeric) and not is_file_record(s.last)
    ]
    metrics = [s for s in summaries if s.numeric and not s.tracked_as_param]
    if not params and not metrics and not files:
        out.line()
        out.line("no values tracked")
        return
    if files:
        out.line()
        _show_files(run, files, out)
    if params:
        out.line()
        rows = [[key.key, _steps(key), _cell(key.last)] for key in params]
        out.table(["parameter", "step", "value"], rows, title="Parameters")
    if metrics:
        out.line()
        unicode = fits_unicode(BARS)
        rows = [
            [
                key.key,
                _steps(key),
                _number(key.last),
                _number(key.low),
                _number(key.high),
                sparkline(key.trend, unicode=unicode),
            ]
            for key in metrics
        ]
        out.table(
            ["metric", "steps", "last", "min", "max", "trend"],
            rows,
            right=["last", "min", "max"],
            title="Metrics",
        )


def _show_files(run: RunView, files: list[KeySummary], out: Output) -> None:
    """The files and images (the latest of each key), and what the run holds on disk."""
    rows = [
        [
            key.key,
            _steps(key),
            key.last[formats.FILE_KIND],
            key.last[formats.FILE_NAME],
            format_size(key.last[formats.FILE_SIZE]),
            key.last[formats.FILE_PATH],
        ]
        for key in files
    ]
    out.table(["file", "step", "kind", "name", "size", "held in the store as"], rows, title="Files")
    held = run.document.get(formats.FILES_HELD)
    if isinstance(held, dict):
        out.line(
            f"files held: {held.get(formats.HELD_COUNT)} "
            f"({format_size(held.get(formats.HELD_BYTES))}) in {held.get(formats.HELD_FOLDER)} "
            "under the run log store; remove the folder once every tracker has them"
        )


def format_size(size: object) -> str:
    """Bytes for people: ``512 B``, ``1.5 MB``, ``2.0 GB`` (powers of 1000)."""
    if not isinstance(size, int):
        return "?"
    if size < 1000:
        return f"{size} B"
    scaled = float(size)
    for unit in ("kB", "MB"):
        scaled /= 1000
        if scaled < 1000:
            return f"{scaled:.1f} {unit}"
    return f"{scaled / 1000:.1f} GB"


def _spool_trouble_lines(run: RunView) -> list[str]:
    """What never reached the spool (a full disk), and spool lines that could not be read."""
    lines = []
    spool = run.document.get(formats.SPOOL_TROUBLE)
    if isinstance(spool, dict) and spool.get(formats.TROUBLE_LOST):
        lines.append(
            f"{spool[formats.TROUBLE_LOST]} values could not be written to the spool in "
            f"{spool.get(formats.TROUBLE_FOLDER)} ({spool.get(formats.TROUBLE_ERROR)}): "
            "no tracker received them"
        )
    unreadable = run.unreadable_lines
    if unreadable:
        lines.append(
            f"{unreadable} spool {'line' if unreadable == 1 else 'lines'} could not be read "
            "(torn, or not written by trackhook) and were skipped"
        )
    return lines


def _rejection_lines(delivery: dict[str, Any]) -> list[str]:
    """Why a tracker refused values, and the first keys it refused."""
    reasons = delivery.get(formats.REJECTED_REASONS)
    lines = [
        f"  rejected {count}: {reason}"
        for reason, count in (reasons.items() if isinstance(reasons, dict) else [])
    ]
    keys = delivery.get(formats.REJECTED_KEYS)
    if isinstance(keys, list) and keys:
        lines.append(f"  rejected keys: {', '.join(map(str, keys))}")
    return lines


def sparkline(
    values: Sequence[float], width: int = SPARKLINE_WIDTH, *, unicode: bool = True
) -> str:
    """The values in order as bars ``▁``..``█`` scaled from min to max, at most ``width`` wide.

    Longer series are averaged into ``width`` buckets; NaN and infinities are drawn as a space.
    """
    bars = BARS if unicode else _ASCII_BARS
    if len(values) > width:
        values = [
            _mean(values[i * len(values) // width : (i + 1) * len(values) // width])
            for i in range(width)
        ]
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    marks = []
    for value in values:
        if not math.isfinite(value):
            marks.append(" ")
        elif span == 0:
            marks.append(bars[len(bars) // 2 - 1])
        else:
            marks.append(bars[min(int((value - low) / span * len(bars)), len(bars) - 1)])
    return "".join(marks)


def _mean(values: Sequence[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else math.nan


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _steps(key: KeySummary) -> str:
    if key.steps == 1:
        return str(key.first_step)
    return f"{key.first_step}..{key.last_step} ({key.steps})"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
