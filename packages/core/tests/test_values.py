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


def test_an_int_beyond_a_floats_range_is_rejected() -> None:
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match=r"'big'.*float"):
        trackhook.track_this(big=10**400)


def test_str_subclasses_and_enums_are_tracked_as_their_value() -> None:
    import enum

    class Mode(str, enum.Enum):
        TRAIN = "train"

    class Size(enum.Enum):
        SMALL = 1

    class Name(str):
        pass

    with trackhook.start_run() as run:
        trackhook.track_this(mode=Mode.TRAIN, size=Size.SMALL, name=Name("resnet"))
    assert run.user_defined_metrics == {"mode": "train", "size": 1, "name": "resnet"}


def test_an_empty_top_level_key_is_rejected() -> None:
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="empty"):
        trackhook.track_this(**{"": 1.0})


def test_int_and_str_keys_that_become_the_same_key_are_rejected() -> None:
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="both become"):
        trackhook.track_this(classes={1: "int", "1": "str"})


def test_a_list_that_contains_itself_names_its_key() -> None:
    looped: list[object] = []
    looped.append(looped)
    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="'looped'"):
        trackhook.track_this(looped=looped)


def test_a_model_that_cannot_be_dumped_names_its_key() -> None:
    from pydantic import BaseModel, ConfigDict

    class Holder(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: object

    with trackhook.start_run(), pytest.raises(trackhook.InvalidValueError, match="'holder'"):
        trackhook.track_this(holder=Holder(thing=object()))


def test_changing_the_returned_metrics_does_not_change_the_run() -> None:
    with trackhook.start_run() as run:
        trackhook.track_this(eggs={"ham": "world"})
        run.user_defined_metrics["eggs"]["ham"] = "changed"
    assert run.user_defined_metrics == {"eggs": {"ham": "world"}}


@pytest.mark.parametrize("run_id", ["exp/trial-1", "..", "a\\b"])
def test_a_run_id_that_would_name_another_file_is_rejected(run_id: str) -> None:
    with pytest.raises(trackhook.InvalidValueError, match="run_id"):
        trackhook.start_run(run_id=run_id).__enter__()
