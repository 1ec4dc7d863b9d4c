"""The spool line of one call: the fast path for floats writes what the JSON encoder would."""

from __future__ import annotations

import json
import math
from collections import OrderedDict, defaultdict
from types import MappingProxyType

import pytest

import trackhook
from trackhook.lines import encode_line, plain_float_line

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@pytest.mark.parametrize(
    "values",
    [
        {"loss": 0.5},
        {f"metric_{index}": index / 7 for index in range(10)},
        {"tiny": 5e-324, "huge": 1.7976931348623157e308, "negative_zero": -0.0},
        {"big_sum": 1e308, "twice": 1e308},
        {"nan": math.nan},
        {"up": math.inf, "down": -math.inf},
        {"flag": True, "nothing": None},
        {"whole": 3},
        {"val/loss": 0.5},
        {'quote"d': 0.5},
        {"café": 0.5},
        {"1st": 0.5},
        {"": 0.5, "loss": 0.5},
        {},
    ],
)
@pytest.mark.parametrize("timestamp", [1796180456.7498546, 1.0, 0.0])
def test_a_line_reads_back_as_the_json_encoders_line(timestamp: float, values: dict) -> None:
    line = encode_line(timestamp, 12, values)
    expected = _ENCODE({"t": timestamp, "s": 12, "v": values}) + "\n"
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert _same(json.loads(line), json.loads(expected))
    if plain_float_line(timestamp, 12, values) is None:
        assert line == expected.encode("ascii")


def _same(read: object, expected: object) -> bool:
    """Equal, NaN included, and of the same types (1.0 is not 1)."""
    if isinstance(expected, dict):
        return (
            isinstance(read, dict)
            and list(read) == list(expected)
            and all(_same(read[key], expected[key]) for key in expected)
        )
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(read, float) and math.isnan(read)
    return type(read) is type(expected) and read == expected


def test_a_float_subclass_is_written_by_the_encoder_not_by_its_repr() -> None:
    class Scaled(float):
        def __repr__(self) -> str:
            return f"Scaled({float(self)})"

    line = encode_line(1.0, 0, {"loss": Scaled(0.5)})
    assert json.loads(line)["v"] == {"loss": 0.5}


def test_params_and_files_are_marked() -> None:
    line = json.loads(
        encode_line(1.0, 2, {"lr": 0.1, "model": {"file": "x"}}, as_params=True, files=["model"])
    )
    assert line == {
        "t": 1.0,
        "s": 2,
        "v": {"lr": 0.1, "model": {"file": "x"}},
        "p": 1,
        "f": ["model"],
    }


def test_only_a_call_with_nothing_to_normalise_has_a_plain_line() -> None:
    assert plain_float_line(1.0, 0, {"loss": 0.5, "acc_1": 0.25}) is not None
    for values in ({"": 0.5, "loss": 0.5}, {"a.b": 0.5}, {"loss": 1}, {"loss": math.nan}, {}):
        assert plain_float_line(1.0, 0, values) is None, values


@pytest.mark.parametrize(
    "values",
    [
        OrderedDict(loss=0.5),
        defaultdict(float, loss=0.5),
        MappingProxyType({"loss": 0.5}),
    ],
    ids=["OrderedDict", "defaultdict", "mappingproxy"],
)
def test_a_mapping_that_is_not_a_plain_dict_is_normalised_and_tracked_whole(
    values: object, tmp_path: object
) -> None:
    assert plain_float_line(1.0, 0, values) is None  # type: ignore[arg-type]
    with trackhook.start_run(config={"run_log_store": str(tmp_path)}) as run:
        run.track(3, values)  # type: ignore[arg-type]
    assert run.user_defined_metrics == {"loss": {"3": 0.5}}
