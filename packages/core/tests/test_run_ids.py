"""Run ids and tags that cannot name a run are refused before anything starts, clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import trackhook
from trackhook.runid import MAX_RUN_ID_BYTES

BAD_RUN_IDS = {
    "a NUL": "a\x00b",
    "a newline": "two\nlines",
    "a tab": "a\tb",
    "an escape sequence": "\x1b[31mred",
    "a lone surrogate": "a\udc80",
    "300 characters": "x" * 300,
    "129 bytes of UTF-8": "é" * 64 + "x",
    "a slash": "../outside",
    "a backslash": "a\\b",
    "a dot": ".",
    "two dots": "..",
    "a leading dot": ".hidden",
    "the run log of a rank": "x.rank-2",
    "the name of a run log": "x.json",
}
BAD_TAGS = {
    "a NUL": "a\x00b",
    "a newline": "two\nlines",
    "a carriage return": "a\rb",
    "300 characters": "t" * 300,
}


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


@pytest.mark.parametrize("run_id", BAD_RUN_IDS.values(), ids=BAD_RUN_IDS.keys())
def test_a_run_id_that_cannot_name_a_run_is_refused_before_anything_starts(
    run_id: str, tmp_path: Path
) -> None:
    before = _threads()
    with pytest.raises(trackhook.InvalidValueError, match="a run_id is 1 to 128 bytes") as caught:
        with trackhook.start_run(run_id=run_id, config={}):
            pass
    assert caught.value.key == "run_id"
    assert _threads() == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tag", BAD_TAGS.values(), ids=BAD_TAGS.keys())
def test_a_tag_that_cannot_name_an_experiment_is_refused_before_anything_starts(
    tag: str, tmp_path: Path
) -> None:
    before = _threads()
    with pytest.raises(
        trackhook.InvalidValueError, match="a tag is at most 256 characters"
    ) as caught:
        with trackhook.start_run(run_id="fine", tag=tag, config={}):
            pass
    assert caught.value.key == "tag"
    assert _threads() == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("run_id", " ", "starts or ends with a space"),
        ("run_id", "run ", "starts or ends with a space"),
        ("run_id", " run", "starts or ends with a space"),
        ("run_id", "-rf", "read it as an option"),
        ("tag", "tag ", "starts or ends with a space"),
        ("tag", " ", "starts or ends with a space"),
    ],
)
def test_a_space_at_either_end_or_a_leading_dash_is_refused_before_anything_starts(
    key: str, value: str, problem: str, tmp_path: Path
) -> None:
    names = {"run_id": "fine", "tag": "", key: value}
    with pytest.raises(trackhook.InvalidValueError, match=problem) as caught:
        with trackhook.start_run(run_id=names["run_id"], tag=names["tag"], config={}):
            pass
    assert caught.value.key == key
    assert list(tmp_path.iterdir()) == []


def test_the_longest_run_id_names_the_run_log_of_a_high_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1234567")
    run_id = "é" * (MAX_RUN_ID_BYTES // 2)
    with trackhook.start_run(run_id=run_id, tag="t" * 256, config={"ranks": "all"}) as run:
        trackhook.track_this(loss=0.5)
    assert run.run_log_path.name == f"{run_id}.rank-1234567.json"
    assert json.loads(run.run_log_path.read_text())["user_defined_metrics"] == {"loss": 0.5}


REFUSED_FROM_THE_ENVIRONMENT = """
import trackhook
try:
    trackhook.track_this(loss=0.5)
except trackhook.InvalidValueError as error:
    print(error.key)
    print(error)
"""


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("TRACKHOOK_RUN_ID", "x.rank-2", "run_id"),
        ("TRACKHOOK_RUN_ID", "two\nlines", "run_id"),
        ("TRACKHOOK_TAG", "two\nlines", "tag"),
    ],
)
def test_a_bad_run_id_or_tag_in_the_environment_gives_the_same_error_naming_the_variable(
    variable: str, value: str, key: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", REFUSED_FROM_THE_ENVIRONMENT],
        cwd=tmp_path,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    first_line, message = result.stdout.split("\n", 1)
    assert first_line == key
    assert f"(from ${variable}) cannot name a run" in message
    assert not (tmp_path / ".run_log_store").exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--run-id", "x.rank-2"), ("--run-id", "a\x1bb"), ("--tag", "a\nb")]
)
def test_trackhook_run_refuses_a_bad_run_id_or_tag_before_running_the_command(
    option: str, value: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "trackhook.cli", "run", option, value, "--", "touch", "ran"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(f"trackhook: error: {value!r} (from {option}) cannot name")
    assert f"hint: give another {option}" in result.stderr
    assert list(tmp_path.iterdir()) == []
