"""What the fitter keeps between batches to read less: the lines it parsed beyond a batch, and
the key each metric is stored under. Neither may change what a tracker receives."""

from __future__ import annotations

from pathlib import Path

from trackhook.fitting import Fitter
from trackhook.limits import TighterLimitsRequired, TrackerLimits
from trackhook.store import SpoolPosition, SpoolWriter

SMALL_BATCHES = TrackerLimits(max_values_per_batch=3)


def _spool(path: Path, calls: int, start: int = 0) -> None:
    writer = SpoolWriter(path)
    for step in range(start, start + calls):
        writer.append(1.0, step, {"loss": step / 2, "acc": step / 4})
    writer.close()


def _steps_read(
    fitter: Fitter, path: Path, start: SpoolPosition
) -> tuple[list[int], SpoolPosition]:
    steps: list[int] = []
    position = start
    while (fitted := fitter.read_batch(path, position)) is not None:
        steps += [record.step for record in fitted.records if record.key == "loss"]
        fitted.sent = len(fitted.records)
        position = fitted.position()
    return steps, position


def _never_renamed(key: str, stored: str, why: str | None) -> None:
    raise AssertionError(f"{key!r} renamed to {stored!r}")


def test_batches_read_one_after_another_give_each_line_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.v3.jsonl"
    _spool(path, 1000)
    steps, _ = _steps_read(Fitter(SMALL_BATCHES, _never_renamed, tmp_path), path, SpoolPosition())
    assert steps == list(range(1000))


def test_lines_written_after_a_read_are_read_next_from_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "spool.v3.jsonl"
    fitter = Fitter(SMALL_BATCHES, _never_renamed, tmp_path)
    _spool(path, 10)
    first, position = _steps_read(fitter, path, SpoolPosition())
    _spool(path, 10, start=10)
    later, _ = _steps_read(fitter, path, position)
    assert first + later == list(range(20))


def test_a_read_from_another_position_reads_the_file_not_what_was_kept(tmp_path: Path) -> None:
    path = tmp_path / "spool.v3.jsonl"
    _spool(path, 100)
    fitter = Fitter(SMALL_BATCHES, _never_renamed, tmp_path)
    fitter.read_batch(path, SpoolPosition())  # keeps the lines beyond its batch
    again = fitter.read_batch(path, SpoolPosition())
    assert again is not None
    assert [record.step for record in again.records] == [0, 0, 1, 1]


def test_metric_keys_are_fitted_again_after_the_tracker_tightens_its_limits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.v3.jsonl"
    _spool(path, 2)
    renamed: list[tuple[str, str]] = []
    fitter = Fitter(
        TrackerLimits(), lambda key, stored, why: renamed.append((key, stored)), tmp_path
    )
    fitted = fitter.read_batch(path, SpoolPosition())
    assert fitted is not None
    fitter.tighten(fitted, TighterLimitsRequired("shorter keys", max_key_length=3))
    assert {record.key for record in fitted.records} == {"acc", renamed[0][1]}
    again = fitter.read_batch(path, SpoolPosition())
    assert again is not None
    assert {record.key for record in again.records} == {"acc", renamed[0][1]}
    assert [key for key, _ in renamed] == ["loss"]
