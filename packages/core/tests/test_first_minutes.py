"""A newcomer's first minutes (issue 17): each mistake gets an answer that says what to do."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path, PurePosixPath

import pytest

import trackhook
from trackhook.cli import main
from trackhook.config import load_config
from trackhook.errors import RunContinuedWarning
from trackhook.resume import describe_resumptions, warn_if_closed_run_continues

TRACKHOOK = str(Path(sys.executable).parent / "trackhook")
PACKAGE = str(Path(trackhook.__file__).parent)


def run_python(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    Path("script.py").write_text(textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, "script.py"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def trackhook_cli(*arguments: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [TRACKHOOK, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- configuration (items 1-3, 11) --------------------------------------------------------------


def test_a_trackhook_yml_in_the_working_directory_is_read() -> None:
    Path("trackhook.yml").write_text("experiment_tracker:\n  type: from-yml\n")
    loaded = load_config()
    assert loaded.config.trackers[0].type == "from-yml"
    assert loaded.path == Path.cwd() / "trackhook.yml"


def test_both_trackhook_yaml_and_trackhook_yml_is_an_error_naming_both() -> None:
    Path("trackhook.yaml").write_text("experiment_tracker:\n  type: a\n")
    Path("trackhook.yml").write_text("experiment_tracker:\n  type: b\n")
    with pytest.raises(
        trackhook.ConfigError, match=r"trackhook\.yaml and trackhook\.yml.*keep one"
    ):
        load_config()


def test_the_configuration_used_is_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    Path("trackhook.yml").write_text("experiment_tracker:\n  type: do-nothing\n")
    with caplog.at_level(logging.DEBUG, logger="trackhook"):
        load_config()
    assert f"trackhook configuration: {Path.cwd() / 'trackhook.yml'}" in caplog.messages


def test_a_misspelt_tracker_type_gets_the_closest_one_and_its_package() -> None:
    with pytest.raises(trackhook.UnknownTrackerError) as caught:
        trackhook.start_run(config={"experiment_tracker": {"type": "mlfow"}}).__enter__()
    message = str(caught.value)
    assert "unknown tracker type 'mlfow'; did you mean 'mlflow'?" in message
    assert "pip install trackhook-mlflow" in message


def test_an_adapter_that_is_not_installed_is_named_with_its_checkout_folder() -> None:
    with pytest.raises(trackhook.UnknownTrackerError) as caught:
        trackhook.start_run(config={"experiment_tracker": {"type": "tensorboard"}}).__enter__()
    assert "pip install ./packages/tracker-tensorboard" in str(caught.value)
    assert "did you mean" not in str(caught.value)


def test_a_list_under_experiment_tracker_points_to_experiment_trackers() -> None:
    Path("trackhook.yaml").write_text("experiment_tracker:\n  - type: a\n  - type: b\n")
    with pytest.raises(
        trackhook.ConfigError, match=r"experiment_tracker.*write experiment_trackers"
    ):
        load_config()


# -- values (items 4, 5) -----------------------------------------------------------------------


def test_numpy_bools_and_zero_dimensional_arrays_are_tracked_as_their_python_value() -> None:
    numpy = pytest.importorskip("numpy")
    with trackhook.start_run() as run:
        trackhook.track_this(converged=numpy.bool_(True), loss=numpy.array(0.5))
    assert run.user_defined_metrics == {"converged": True, "loss": 0.5}
    assert type(run.user_defined_metrics["converged"]) is bool


def test_dates_times_paths_and_uuids_are_tracked_as_their_obvious_strings() -> None:
    moment = datetime.datetime(2026, 12, 1, 21, 36, tzinfo=datetime.timezone.utc)
    with trackhook.start_run() as run:
        trackhook.track_this(
            started=moment,
            day=moment.date(),
            data=PurePosixPath("data/train.csv"),
            dataset_id=uuid.UUID(int=1),
        )
    assert run.user_defined_metrics == {
        "started": "2026-12-01T21:36:00+00:00",
        "day": "2026-12-01",
        "data": "data/train.csv",
        "dataset_id": "00000000-0000-0000-0000-000000000001",
    }


@pytest.mark.parametrize(
    ("value", "conversion"),
    [
        (decimal.Decimal("0.1"), "float(value)"),
        (datetime.timedelta(minutes=3), "value.total_seconds()"),
        (b"bytes", "value.decode()"),
    ],
)
def test_values_with_several_reasonable_forms_are_refused_with_the_conversion_to_write(
    value: object, conversion: str
) -> None:
    with trackhook.start_run():
        with pytest.raises(
            trackhook.InvalidValueError, match=rf"'x'.*track {re.escape(conversion)}"
        ):
            trackhook.track_this(x=value)


# -- messages (items 6, 7) ---------------------------------------------------------------------

FAILING_TRACKER_SCRIPT = """
    import trackhook
    from trackhook.registry import registered

    class Down:
        @trackhook.hookimpl
        def trackhook_log_batch(self, run, metrics, params):
            raise ConnectionError("server down")

    config = {
        "experiment_tracker": {"type": "down"},
        "delivery": {"interval": 0.01, "flush_timeout": 0.3, "patience": 0},
    }
    with registered("down", Down):
        with trackhook.start_run(run_id="down-run", config=config):
            trackhook.track_this(step=1, loss=0.5)
"""


def test_warnings_of_a_failing_tracker_show_no_line_of_trackhooks_code() -> None:
    done = run_python(FAILING_TRACKER_SCRIPT)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "TrackhookWarning: " in line]
    assert warned, done.stderr
    assert PACKAGE not in done.stderr
    assert "_warn(" not in done.stderr
    assert all(
        line.startswith(("trackhook:0: ", f"{Path.cwd() / 'script.py'}:")) for line in warned
    ), done.stderr
    assert not any(": trackhook: " in line for line in warned), "no second 'trackhook:' prefix"


def test_a_warning_on_the_users_thread_points_at_the_users_line() -> None:
    done = run_python(
        """
        from trackhook.errors import warn_in_background

        def users_code():
            warn_in_background("something to know")

        users_code()
        """
    )
    assert done.stderr.splitlines() == [
        f"{Path.cwd() / 'script.py'}:5: TrackhookWarning: something to know",
        '  warn_in_background("something to know")',
    ]


def test_counts_in_messages_agree_with_their_noun() -> None:
    from trackhook.errors import counted

    assert [counted(n, "value") for n in (0, 1, 2)] == ["0 values", "1 value", "2 values"]
    assert counted(3, "entry", "entries") == "3 entries"


def make_run(run_id: str) -> None:
    with trackhook.start_run(run_id=run_id):
        trackhook.track_this(learning_rate=3e-4, batch_size=32)
        for step in range(10):
            trackhook.track_this(step=step, loss=1.0 / (step + 1))


def test_syncs_progress_bar_shows_no_markup_written_out() -> None:
    make_run("first")
    make_run("second")
    output = trackhook_cli("sync", env={"FORCE_COLOR": "1"})
    assert "first: delivered" in output
    assert "[progress." not in output


@pytest.mark.parametrize("command", ["run", "runs", "show", "plot", "trackers", "sync"])
def test_each_commands_help_describes_config_plain_and_debug(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    described = " ".join(capsys.readouterr().out.split())
    assert "as above" not in described
    assert "--config FILE the configuration file to use" in described
    assert "--plain plain text: no rich tables" in described
    assert "--debug on an error, show the full traceback" in described


def png_height(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return int(image.size[1])


def test_plot_draws_the_curves_and_single_point_values_only_with_all(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("matplotlib")
    make_run("plotted")
    assert main(["plot", "plotted", "-o", "curves.png"]) == 0
    assert main(["plot", "plotted", "--all", "-o", "all.png"]) == 0
    # One panel, then three (loss; learning_rate and batch_size at step 0 alone): 2.2 in each.
    assert png_height(Path("all.png")) - png_height(Path("curves.png")) == 2 * 220


def test_plot_of_a_run_without_curves_says_how_to_draw_its_points(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trackhook.start_run(run_id="points"):
        trackhook.track_this(learning_rate=3e-4)
    assert main(["plot", "points"]) == 2
    assert "add --all" in capsys.readouterr().err


# -- a continued run (item 8) ------------------------------------------------------------------


def test_a_closed_run_opened_again_warns_that_it_continues() -> None:
    with trackhook.start_run(run_id="again") as first:
        trackhook.track_this(step=1, loss=0.5)
    with pytest.warns(RunContinuedWarning, match=r"run 'again' was closed \(SUCCESS at .*\) and"):
        warn_if_closed_run_continues(first.run_log_path, "again")


def test_an_open_or_new_run_gets_no_continued_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with trackhook.start_run(run_id="open") as run:
            warn_if_closed_run_continues(run.run_log_path, "open")
        warn_if_closed_run_continues(Path(".run_log_store/new.json"), "new")


def test_a_run_log_of_a_continued_run_is_described_with_when() -> None:
    for _ in range(3):
        with trackhook.start_run(run_id="thrice") as run:
            trackhook.track_this(step=1, loss=0.5)
    document = json.loads(run.run_log_path.read_text())
    described = describe_resumptions(document)
    assert described is not None
    assert described.startswith("continued 2 times, last at 20")
    assert describe_resumptions({"run_id": "fresh"}) is None


def test_reopening_a_closed_run_warns_at_the_users_line() -> None:
    with trackhook.start_run(run_id="again"):
        trackhook.track_this(step=1, loss=0.5)
    with (
        pytest.warns(trackhook.RunContinuedWarning, match="'again' was closed"),
        trackhook.start_run(run_id="again"),
    ):
        pass
