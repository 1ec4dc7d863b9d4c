"""The conformance suite for plugins: it passes on a correct tracker, fails on broken ones."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TRACKERS = '''
import contextlib, json, math
from pathlib import Path

from pydantic import BaseModel, ConfigDict

import trackhook
from trackhook.testing.conformance import ReportedRun, TrackerConformance


class FileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


class FileTracker:
    """Stores every value as a JSON line, in batches, within declared limits."""

    config_model = FileSettings
    limits = trackhook.TrackerLimits(
        key_chars=r"[\\w.\\-/ ]",
        max_key_length=100,
        max_param_length=500,
        param_key="{key}_{step}",
        max_values_per_batch=100,
    )

    def __init__(self, config):
        self.path = Path(config.path)

    def write(self, **line):
        with self.path.open("a") as file:
            file.write(json.dumps(line) + "\\n")

    @trackhook.hookimpl
    def trackhook_open_run(self, run):
        self.write(event="open", run_id=run.run_id, tag=run.tag)

    @trackhook.hookimpl
    def trackhook_log_batch(self, run, metrics, params):
        for m in metrics:
            self.metric(run, m)
        for p in params:
            self.write(event="param", run_id=run.run_id, key=p.key, value=p.value)

    def metric(self, run, m):
        self.write(event="metric", run_id=run.run_id, key=m.key, value=m.value, step=m.step)

    @trackhook.hookimpl
    def trackhook_log_file(self, run, file):
        content = file.path.read_bytes().hex()
        self.write(event="file", run_id=run.run_id, key=file.key, step=file.step, content=content)

    @trackhook.hookimpl
    def trackhook_close_run(self, run, status):
        self.write(event="close", run_id=run.run_id, status=status)

    @trackhook.hookimpl
    def trackhook_client_context(self, run):
        return contextlib.nullcontext(self.path)


class Reader(TrackerConformance):
    tracker_type = "conformance-file"
    flush_timeout = 1.0

    def tracker_config(self, folder):
        return {"path": str(folder / "values.jsonl")}

    def read_run(self, folder, run):
        path = folder / "values.jsonl"
        if not path.exists():
            return None
        reported = ReportedRun()
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["run_id"] != run.run_id:
                continue
            if event["event"] == "open":
                reported.tag = event["tag"]
            elif event["event"] == "metric":
                reported.metrics.setdefault(event["key"], {})[event["step"]] = event["value"]
            elif event["event"] == "param":
                reported.params[event["key"]] = event["value"]
            elif event["event"] == "file":
                reported.files = reported.files or {}
                steps = reported.files.setdefault(event["key"], {})
                steps[event["step"]] = bytes.fromhex(event["content"])
            else:
                reported.status = event["status"]
        return reported
'''

CORRECT = """
class TestCorrect(Reader):
    tracker_class = FileTracker


class WithoutFiles(FileTracker):
    trackhook_log_file = None


class TestCorrectWithoutFiles(Reader):
    tracker_class = WithoutFiles
"""

BROKEN = {
    "loses_steps": (
        "def metric(self, run, m):\n"
        "    self.write(event='metric', run_id=run.run_id, key=m.key, value=m.value, step=0)",
        "test_metrics_arrive_at_their_steps_in_any_order",
    ),
    "drops_nan": (
        "def metric(self, run, m):\n"
        "    if math.isfinite(m.value):\n"
        "        FileTracker.metric(self, run, m)",
        "test_nan_and_infinities_arrive",
    ),
    "always_succeeds": (
        "@trackhook.hookimpl\n"
        "def trackhook_close_run(self, run, status):\n"
        "    self.write(event='close', run_id=run.run_id, status='SUCCESS')",
        "test_a_block_that_raises_closes_the_run_with_fail_after_its_values",
    ),
    "ignores_its_config": (
        "def __init__(self, config):\n    self.path = Path('values.jsonl')",
        "test_fan_out_sends_every_value_to_each_tracker",
    ),
    "keeps_only_the_first_batch": (
        "@trackhook.hookimpl\n"
        "def trackhook_log_batch(self, run, metrics, params):\n"
        "    if not getattr(self, 'done', False):\n"
        "        self.done = True\n"
        "        FileTracker.trackhook_log_batch(self, run, metrics, params)",
        "test_many_values_arrive_across_batches",
    ),
    "corrupts_files": (
        "@trackhook.hookimpl\n"
        "def trackhook_log_file(self, run, file):\n"
        "    self.write(event='file', run_id=run.run_id, key=file.key, step=file.step,\n"
        "               content=file.path.read_bytes()[:-1].hex())",
        "test_files_and_images_arrive_with_their_bytes_or_count_as_skipped",
    ),
    "loses_files": (
        "@trackhook.hookimpl\ndef trackhook_log_file(self, run, file):\n    pass",
        "test_files_and_images_arrive_with_their_bytes_or_count_as_skipped",
    ),
    "fails_every_batch": (
        "@trackhook.hookimpl\n"
        "def trackhook_log_batch(self, run, metrics, params):\n"
        "    raise ConnectionError('server down')",
        "test_a_run_opens_and_closes_with_success",
    ),
}


def broken_case(name: str, method: str) -> str:
    body = "\n".join("    " + line for line in method.splitlines())
    return f"""
class Broken_{name}(FileTracker):
{body}


class Test_{name}(Reader):
    tracker_class = Broken_{name}
"""


def test_the_suite_passes_on_a_tracker_that_keeps_every_promise(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=TRACKERS + CORRECT)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=26)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_suite_fails_on_a_broken_tracker(pytester: pytest.Pytester, name: str) -> None:
    method, failing_test = BROKEN[name]
    pytester.makepyfile(test_suite=TRACKERS + broken_case(name, method))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-q", "-rf", "-W", "ignore", "-k", failing_test
    )
    result.assert_outcomes(failed=1, deselected=12)
    result.stdout.fnmatch_lines([f"FAILED test_suite.py::Test_{name}::{failing_test}*"])


def test_a_tracker_whose_constructor_raises_fails_with_the_cause(
    pytester: pytest.Pytester,
) -> None:
    method = "def __init__(self, config):\n    raise KeyError('no such table: values')"
    pytester.makepyfile(test_suite=TRACKERS + broken_case("constructor", method))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-q", "-W", "ignore", "-k", "opens_and_closes"
    )
    result.assert_outcomes(failed=1, deselected=12)
    result.stdout.fnmatch_lines(["*did not load*KeyError*no such table: values*"])


def test_the_suite_is_not_collected_from_the_module_that_defines_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_import="from trackhook.testing.conformance import TrackerConformance")
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_subclass_without_a_tracker_type_says_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_suite="from trackhook.testing.conformance import TrackerConformance\n"
        "class TestMine(TrackerConformance):\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "-x")
    result.stdout.fnmatch_lines(["*must set tracker_type*"])
