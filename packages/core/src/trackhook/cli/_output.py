"""Writing tables, lines and progress to the terminal: with rich where it can, plain otherwise.

rich is used when it is installed, standard output is a terminal (or ``FORCE_COLOR`` is set, rich's
own switch) and ``--plain`` was not given. Piped output is plain text: stable for scripts and
``grep``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["Output", "fits_unicode"]


def fits_unicode(text: str) -> bool:
    """Whether standard output can encode ``text`` (sparklines need more than ASCII)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class Output:
    """Where a command writes what it shows."""

    def __init__(self, *, plain: bool = False) -> None:
        self._console: Any = None if plain else _rich_console()

    @property
    def rich(self) -> bool:
        return self._console is not None

    def line(self, text: str = "", *, style: str | None = None) -> None:
        if self._console is not None:
            self._console.print(text, style=style, markup=False, highlight=False)
        else:
            print(text)

    def heading(self, text: str) -> None:
        self.line(text, style="bold")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        right: Sequence[str] = (),
        title: str | None = None,
    ) -> None:
        """A table; the columns named in ``right`` are aligned right (numbers)."""
        if self._console is not None:
            from rich.table import Table

            table = Table(title=title, title_justify="left", header_style="bold")
            for column in columns:
                table.add_column(
                    column, justify="right" if column in right else "left", overflow="fold"
                )
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        if title:
            print(title)
        widths = [
            max([len(column), *(len(row[index]) for row in rows)])
            for index, column in enumerate(columns)
        ]

        def render(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(width) if column in right else cell.ljust(width)
                for cell, width, column in zip(cells, widths, columns, strict=True)
            ]
            return "  ".join(parts).rstrip()

        print(render([column.upper() for column in columns]))
        for row in rows:
            print(render(row))

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        """Yield a function to call after each of ``total`` items; a bar on a rich terminal."""
        if self._console is None or total < 2:
            yield lambda: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # A styled column, not markup in a string: the bar is redrawn inside each line()'s print,
        # whose markup=False would leave the markup written out literally.
        label = TextColumn("{task.description}", style="progress.description", markup=False)
        with Progress(
            label,
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


def _rich_console() -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(soft_wrap=False)
    return console if console.is_terminal else None
