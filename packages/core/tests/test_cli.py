"""The ``trackhook`` command, through its real entry point in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import trackhook
from trackhook.cli import main
from trackhook.cli._show import sparkline

from .fake_distribution import install
from .sink import values_of

TRACKHOOK = str(Path(sys.executable).parent / "trackhook")

RUNNABLE_SHELL_TASK = """
export TRACKHOOK_TRACK_answer=42.0
export TRACKHOOK_TRACK_eggs='{"ham": "world"}'
export TRACKHOOK_TRACK_spam="hello"
export TRACKHOOK_TRACK_spam_STEP_1="hey"
"""


def trackhook_cli(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [TRACKHOOK, *arguments], capture_output=True, text=True, env=environment, timeout=120
    )


def run_log(run_id: str, store: Path = Path(".run_log_store")) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((store / f"{run_id}.json").read_text())
    return document


def test_importing_trackhook_imports_neither_the_command_line_nor_its_extras() -> None:
    script = (
        "import sys, trackhook\n"
        "heavy = ('trackhook.cli', 'rich', 'matplotlib', 'argparse')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


# -- trackhook run ----------------------------------------------------------------------------


def test_run_tracks_the_variables_a_bash_command_exports_as_runnable_does() -> None:
    result = trackhook_cli("run", "--run-id", "shell-1", "--", "bash", "-c", RUNNABLE_SHELL_TASK)
    assert result.returncode == 0, result.stderr
    assert run_log("shell-1")["user_defined_metrics"] == {
        "answer": 42.0,
        "eggs": {"ham": "world"},
        "spam": {"0": "hello", "1": "hey"},
    }
    assert run_log("shell-1")["status"] == "SUCCESS"


def test_run_names_the_run_and_its_tag_and_says_where_its_log_is() -> None:
    result = trackhook_cli("run", "--run-id", "named", "--tag", "baseline", "--", "true")
    assert run_log("named")["tag"] == "baseline"
    assert "run named SUCCESS" in result.stderr
    assert "named.json" in result.stderr


def test_a_python_child_joins_the_run_instead_of_opening_its_own() -> None:
    child = (
        "import trackhook\n"
        "for step in range(3):\n"
        "    trackhook.track_this(step=step, loss=1.0 / (step + 1))\n"
        "trackhook.track_this(optimiser={'name': 'adam'})\n"
    )
    result = trackhook_cli("run", "--run-id", "joined", "--", sys.executable, "-c", child)
    assert result.returncode == 0, result.stderr
    assert run_log("joined")["user_defined_metrics"] == {
        "loss": {"0": 1.0, "1": 0.5, "2": 1.0 / 3},
        "optimiser": {"name": "adam"},
    }
    assert sorted(path.name for path in Path(".run_log_store").glob("*.json")) == ["joined.json"]


def test_the_exit_code_is_the_commands_and_a_failure_closes_the_run_as_fail() -> None:
    result = trackhook_cli(
        "run", "--run-id", "failing", "--", "bash", "-c", "export TRACKHOOK_TRACK_x=1; exit 3"
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert run_log("failing")["status"] == "FAIL"
    assert run_log("failing")["user_defined_metrics"] == {"x": 1}


def test_a_command_killed_by_a_signal_exits_as_a_shell_reports_it() -> None:
    result = trackhook_cli("run", "--run-id", "killed", "--", "bash", "-c", "kill -TERM $$")
    assert result.returncode == 128 + 15
    assert run_log("killed")["status"] == "FAIL"


def test_only_the_outermost_bash_reports_its_variables() -> None:
    script = (
        "export TRACKHOOK_TRACK_outer=1\n"
        "bash -c 'export TRACKHOOK_TRACK_inner=2'\n"
        "export TRACKHOOK_TRACK_after=3\n"
    )
    trackhook_cli("run", "--run-id", "nested", "--", "bash", "-c", script)
    assert run_log("nested")["user_defined_metrics"] == {"outer": 1, "after": 3}


def test_a_bash_started_by_a_python_child_reports_its_variables() -> None:
    child = (
        "import subprocess\n"
        "subprocess.run(['bash', '-c', 'export TRACKHOOK_TRACK_first=1'], check=True)\n"
        "subprocess.run(['bash', '-c', 'export TRACKHOOK_TRACK_second=2'], check=True)\n"
    )
    trackhook_cli("run", "--run-id", "chain", "--", sys.executable, "-c", child)
    assert run_log("chain")["user_defined_metrics"] == {"first": 1, "second": 2}


def test_the_users_own_bash_env_is_still_sourced(tmp_path: Path) -> None:
    rc = tmp_path / "rc.sh"
    rc.write_text("export TRACKHOOK_TRACK_from_rc=7\n")
    script = "bash -c 'echo \"nested sees $BASH_ENV\"'"
    result = trackhook_cli(
        "run", "--run-id", "rc", "--", "bash", "-c", script, env={"BASH_ENV": str(rc)}
    )
    assert f"nested sees {rc}" in result.stdout
    assert run_log("rc")["user_defined_metrics"] == {"from_rc": 7}


def test_a_variable_the_command_changes_is_tracked_with_its_new_value() -> None:
    result = trackhook_cli(
        "run",
        "--run-id",
        "changed",
        "--",
        "bash",
        "-c",
        "export TRACKHOOK_TRACK_given=2",
        env={"TRACKHOOK_TRACK_given": "1", "TRACKHOOK_TRACK_kept": "5"},
    )
    assert result.returncode == 0, result.stderr
    assert run_log("changed")["user_defined_metrics"] == {"given": 2, "kept": 5}


def test_the_run_delivers_what_the_command_and_its_children_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink_source = (Path(__file__).parent / "sink.py").read_text()
    install(
        tmp_path, monkeypatch, "cli-sink", {"cli_sink": sink_source}, "sink = cli_sink:SinkTracker"
    )
    sink = tmp_path / "sink.jsonl"
    config = tmp_path / "sink.yaml"
    config.write_text(
        f"experiment_tracker:\n  type: sink\n  config:\n    path: {str(sink)!r}\n"
        "delivery:\n  interval: 0.01\n"
    )
    script = (
        f"{sys.executable} -c 'import trackhook; trackhook.track_this(step=2, loss=0.25)'\n"
        "export TRACKHOOK_TRACK_answer=42.0\n"
    )
    result = trackhook_cli(
        "run",
        "--config",
        str(config),
        "--run-id",
        "delivered",
        "--",
        "bash",
        "-c",
        script,
        env={"PYTHONPATH": str(tmp_path / "site")},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(values_of(sink)) == [("answer", 42.0, 0), ("loss", 0.25, 2)]


def test_run_without_a_command_says_how_to_give_one() -> None:
    result = trackhook_cli("run", "--run-id", "nothing")
    assert result.returncode == 2
    assert result.stderr.startswith("trackhook: error: no command to run")
    assert "hint: put the command after `--`" in result.stderr


def test_a_command_that_does_not_exist_opens_no_run() -> None:
    result = trackhook_cli("run", "--run-id", "missing", "--", "no-such-command-here")
    assert result.returncode == 2
    assert "command not found: 'no-such-command-here'" in result.stderr
    assert not Path(".run_log_store/missing.json").exists()


# -- trackhook runs / show ------------------------------------------------------------------


def make_run(run_id: str, tag: str = "baseline", steps: int = 8) -> None:
    with trackhook.start_run(run_id=run_id, tag=tag):
        trackhook.track_this(optimiser={"name": "adam", "lr": 3e-4}, note="first try")
        for step in range(steps):
            trackhook.track_this(step=step, loss=1.0 / (step + 1), accuracy=step / steps)


def test_runs_lists_every_run_newest_first_with_its_counts() -> None:
    make_run("older-run")
    make_run("newer-run", tag="other")
    result = trackhook_cli("runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "RUN", "ID", "TAG", "STATUS", "START", "DURATION", "TRACKERS", "VALUES", "UNDELIVERED"
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == ["newer-run", "older-run"]
    newer = lines[1].split()
    assert newer[1:3] == ["other", "SUCCESS"]
    assert newer[-3:] == ["do-nothing", "19", "0"]  # nested dicts count by their leaves


def test_show_prints_parameters_and_each_metric_with_last_min_max_and_sparkline() -> None:
    make_run("shown")
    result = trackhook_cli("show", "shown")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "run shown" in out
    assert "status SUCCESS" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["optimiser.name"][1:] == ["0", "adam"]
    assert rows["note"][1:] == ["0", "first", "try"]
    assert rows["loss"][1:] == ["0..7", "(8)", "0.125", "0.125", "1", "█▄▂▂▁▁▁▁"]
    assert rows["accuracy"][1:] == ["0..7", "(8)", "0.875", "0", "0.875", "▁▂▃▄▅▆▇█"]
    assert rows["optimiser.lr"][1:5] == ["0", "0.0003", "0.0003", "0.0003"]


def test_show_json_prints_the_run_log() -> None:
    make_run("as-json")
    result = trackhook_cli("show", "as-json", "--json")
    assert json.loads(result.stdout) == run_log("as-json")


def test_show_uses_rich_tables_on_a_terminal_and_plain_text_when_asked() -> None:
    make_run("pretty")
    fancy = trackhook_cli("show", "pretty", env={"FORCE_COLOR": "1", "COLUMNS": "160"})
    assert fancy.returncode == 0, fancy.stderr
    assert "┃" in fancy.stdout
    assert "▁▂▃▄▅▆▇█" in fancy.stdout
    plain = trackhook_cli("--plain", "show", "pretty", env={"FORCE_COLOR": "1"})
    assert "┃" not in plain.stdout
    assert "▁▂▃▄▅▆▇█" in plain.stdout


def test_without_rich_the_output_is_plain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run("no-rich")
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["show", "no-rich"]) == 0
    out = capsys.readouterr().out
    assert "PARAMETER" in out
    assert "┃" not in out


def test_a_run_with_nan_shows_it_and_leaves_a_gap_in_the_sparkline() -> None:
    with trackhook.start_run(run_id="nan-run"):
        for step, value in enumerate([1.0, float("nan"), 3.0]):
            trackhook.track_this(step=step, loss=value)
    result = trackhook_cli("show", "nan-run")
    line = next(line for line in result.stdout.splitlines() if line.startswith("loss"))
    assert line.split()[1:6] == ["0..2", "(3)", "3", "1", "3"]
    assert line.endswith("▁ █")


def test_a_metric_that_reached_infinity_shows_it_as_its_max() -> None:
    with trackhook.start_run(run_id="inf-run"):
        for step, value in enumerate([1.0, float("inf"), float("nan")]):
            trackhook.track_this(step=step, loss=value)
    result = trackhook_cli("show", "inf-run")
    line = next(line for line in result.stdout.splitlines() if line.startswith("loss"))
    assert line.split()[3:6] == ["nan", "1", "inf"]


def test_show_of_an_unknown_run_is_one_line_and_a_hint() -> None:
    make_run("known-run")
    result = trackhook_cli("show", "known-rum")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trackhook: error: no run 'known-rum' in the run log store '.run_log_store'",
        "hint: did you mean known-run?",
    ]


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    with trackhook.start_run(run_id="long-run"):
        for step in range(5000):
            trackhook.track_this(step=step, loss=float(step))
    reader = subprocess.Popen(
        [TRACKHOOK, "show", "long-run", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None
    assert reader.stderr is not None
    reader.stdout.read(10)
    reader.stdout.close()
    assert reader.wait(timeout=60) == 141
    assert reader.stderr.read() == b""


def test_debug_shows_the_traceback() -> None:
    result = trackhook_cli("--debug", "show", "nothing-here")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "CommandError" in result.stderr


def test_without_a_command_the_help_is_shown() -> None:
    result = trackhook_cli()
    assert result.returncode == 2
    assert "run" in result.stderr
    assert "trackers" in result.stderr


def test_sparklines_scale_from_min_to_max() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▄▄▄"
    assert sparkline([float("nan"), float("inf")]) == "  "
    assert sparkline(list(range(1000)), width=10) == "▁▁▂▃▄▅▆▇██"
    assert sparkline([0, 1], unicode=False) == "_#"


# -- trackhook plot -------------------------------------------------------------------------


def test_plot_writes_a_png_of_the_metrics(tmp_path: Path) -> None:
    from PIL import Image

    make_run("plotted", steps=30)
    out = tmp_path / "figures" / "plotted.png"
    result = trackhook_cli("plot", "plotted", "loss", "accuracy", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 400
        assert height >= 300
        pixels = image.convert("L").tobytes()
    dark = sum(1 for pixel in pixels if pixel < 128)
    assert 0.002 < dark / len(pixels) < 0.5
    assert len(set(pixels)) > 10


def test_plot_of_a_key_that_is_not_a_metric_names_the_metrics() -> None:
    make_run("few-keys")
    result = trackhook_cli("plot", "few-keys", "note")
    assert result.returncode == 2
    assert "has no metric 'note'" in result.stderr
    assert "loss" in result.stderr


def test_plot_without_matplotlib_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run("no-matplotlib")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", "no-matplotlib"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("trackhook: error: `trackhook plot` needs matplotlib")
    assert "pip install 'trackhook[plot]'" in error
    assert not Path("no-matplotlib.png").exists()


# -- trackhook trackers ---------------------------------------------------------------------

ACME = """
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str = Field(alias="server_url", description="Where the server is.")
    mode: Literal["online", "offline"] = "online"
    batch: int | None = None


class Tracker:
    config_model = AcmeSettings

    def __init__(self, config):
        self.config = config
"""


def test_trackers_lists_each_tracker_with_its_distribution_and_config_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "acme-tracker", {"acme": ACME}, "acme = acme:Tracker")
    broken = {"broken_tracker": "import nothing_like_this\n"}
    install(tmp_path, monkeypatch, "broken-tracker", broken, "broken = broken_tracker:Tracker")
    typo = {
        "typo_tracker": "import trackhook\n\nclass Tracker:\n    @trackhook.hookimpl\n"
        "    def trackhook_log_metrc(self, key):\n        pass\n"
    }
    install(tmp_path, monkeypatch, "typo-tracker", typo, "typo = typo_tracker:Tracker")
    result = trackhook_cli("trackers", env={"PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["TYPE", "DISTRIBUTION", "VERSION"]
    acme = lines.index(next(line for line in lines if line.startswith("acme ")))
    assert lines[acme].split()[:4] == ["acme", "acme-tracker", "1.0", "url"]
    assert "(alias server_url)" in lines[acme]
    assert lines[acme].split()[-2:] == ["str", "required"]
    assert lines[acme + 1].split() == ["mode", "Literal['online',", "'offline']", "'online'"]
    assert lines[acme + 2].split() == ["batch", "int", "|", "None", "None"]
    out = result.stdout
    assert "do-nothing" in out
    assert "(no settings)" in out
    assert "broken-tracker" in out
    assert "(cannot be loaded)" in out
    assert "nothing_like_this" in out
    (typo_line,) = [line for line in lines if line.startswith("typo ")]
    assert "(cannot be loaded)" in typo_line
    assert "unknown hook 'trackhook_log_metrc'" in typo_line


# -- trackhook sync ---------------------------------------------------------------------------


def test_sync_runs_names_the_unknown_run_ids_and_syncs_none() -> None:
    from trackhook.sync import sync_runs

    make_run("synced")
    with pytest.raises(trackhook.UnknownRunError, match="no run 'not-a-run'") as caught:
        sync_runs(["synced", "not-a-run"])
    assert caught.value.run_ids == ["not-a-run"]


def test_sync_of_an_unknown_run_is_an_error_with_a_hint() -> None:
    make_run("synced")
    result = trackhook_cli("sync", "not-a-run")
    assert result.returncode == 2
    assert "no run 'not-a-run'" in result.stderr
    assert result.stderr.splitlines()[1].startswith("hint: `trackhook runs` lists the runs")


def test_sync_reports_each_run_with_or_without_a_progress_bar() -> None:
    make_run("first-sync")
    make_run("second-sync")
    for env in ({}, {"FORCE_COLOR": "1"}):
        result = trackhook_cli("sync", env=env)
        assert result.returncode == 0, result.stderr
        assert "first-sync: delivered do-nothing: 0" in result.stdout
        assert "second-sync: delivered do-nothing: 0" in result.stdout
