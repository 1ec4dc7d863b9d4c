"""A cursor over one spool file for one tracker: its claim, where to resume, the next batch.

Several processes may deliver one run (its owner, ``trackhook sync``, another owner of the same
run_id): a spool file goes to a tracker from one of them at a time, under the file's claim, and
the position read under the claim is exactly where the last send stopped. The cursor holds the
claim for as long as it is open, so that the position it resumes from cannot move under it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from trackhook.fitting import FittedLines, Fitter
from trackhook.progress import SendProgress
from trackhook.store import SpoolPosition, TrackerPositions

__all__ = ["SpoolCursor"]


class SpoolCursor:
    """Delivers one spool file to one tracker, batch by batch, from where it stopped last.

    Entered, it claims the file (``claimed`` is False when another process or cursor holds it:
    the file is left alone) and reads where to resume. ``next_batch`` gives the records of the
    lines after those handled so far; ``handled`` and ``save`` record what the tracker has taken,
    through the tracker's ``SendProgress``, which ``TrackerWorker.give_up`` also saves from the
    closing thread.
    """

    def __init__(
        self, path: Path, positions: TrackerPositions, progress: SendProgress, fitter: Fitter
    ) -> None:
        self.path = path
        self.claimed = False
        self._positions = positions
        self._progress = progress
        self._fitter = fitter
        self._exit = ExitStack()
        self._start = SpoolPosition()
        self._batch: FittedLines | None = None

    def __enter__(self) -> SpoolCursor:
        with ExitStack() as entering:
            self.claimed = entering.enter_context(self._positions.claim(self.path))
            if self.claimed:
                self._start = self._progress.resume_at(self.path)
            self._exit = entering.pop_all()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.claimed = False
        self._exit.close()

    @property
    def position(self) -> SpoolPosition:
        """Where the tracker has received the file up to, as far as this process knows: the
        position on disk when entered (or further, if this process handled more than it could
        write down), moved on by every record handled since."""
        return self._batch.position() if self._batch is not None else self._start

    def next_batch(self) -> FittedLines | None:
        """The records of the lines from ``position`` that fill one batch; None at the end."""
        assert self.claimed, "a cursor reads only the file it claimed"
        batch = self._fitter.read_batch(self.path, self.position)
        if batch is not None:
            self._batch = batch
        return batch

    def handled(self, batch: FittedLines, end: int) -> None:
        """The records of ``batch`` up to ``end`` need never be offered again: save them soon."""
        self._progress.handled(batch, end)

    def save(self) -> None:
        """Write down what has been handled, if any of it is not on disk yet."""
        self._progress.save()

    def save_due(self) -> bool:
        """Whether it is time to write the position down while all goes well (see
        ``SendProgress.save_due``)."""
        return self._progress.save_due()
