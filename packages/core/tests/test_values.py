"""Bad input: a clear error naming the key, and nothing already tracked is lost."""

from __future__ import annotations

import pytest

import trackhook


@pytest.mark.parametrize("step", [-1, 1.5, "1", True, None])
def test_a_step_that_is_not_a_non_negative_int_is_rejected(step: object) -> None:
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="step"):
        trackhook.track_this(step=step, x=1)  # type: ignore[arg-type]


def test_a_non_serialisable_value_names_its_key_and_keeps_earlier_values() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(kept=1)
        with pytest.raises(trackhook.InvalidValueError, match=r"'config\.tags'.*set"):
            trackhook.track_this(ok=2, config={"tags": {"a", "b"}})
        trackhook.track_this(after=3)
    assert run.user_defined_metrics == {"kept": 1, "after": 3}


def test_an_array_like_value_suggests_tolist() -> None:
    class ArrayLike:
        def tolist(self) -> list[int]:
            return [1]

    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="tolist"):
        trackhook.track_this(weights=ArrayLike())


def test_an_empty_dict_key_is_rejected() -> None:
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="empty"):
        trackhook.track_this(d={"": 1})


def test_invalid_value_error_is_a_trackhook_error_and_a_value_error() -> None:
    assert issubclass(trackhook.InvalidValueError, trackhook.TrackhookError)
    assert issubclass(trackhook.InvalidValueError, ValueError)


def test_a_closed_run_refuses_values() -> None:
    with trackhook.start_run() as run:
        pass
    with pytest.raises(trackhook.TrackhookError, match="closed"):
        run.track(0, {"x": 1})
