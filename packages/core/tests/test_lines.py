"""The spool line of one call: the fast path for floats writes what the JSON encoder would."""

from __future__ import annotations

import json
import math

import pytest

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
def test_a_line_is_what_the_json_encoder_writes(timestamp: float, values: dict) -> None:
    expected = _ENCODE({"t": timestamp, "s": 12, "v": values}) + "\n"
    assert encode_line(timestamp, 12, values) == expected.encode("ascii")


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
