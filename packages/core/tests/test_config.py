"""Where configuration is found, and the errors that tell a user how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

import trackhook
from trackhook.config import load_config

from .fake_distribution import install

YAML = "experiment_tracker:\n  type: {kind}\n"


def _write(path: str, text: str) -> Path:
    Path(path).write_text(text)
    return Path(path)


def test_without_configuration_the_do_nothing_tracker_is_used() -> None:
    loaded = load_config()
    assert [t.type for t in loaded.config.trackers] == ["do-nothing"]


def test_the_config_argument_wins_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKHOOK_CONFIG", str(_write("env.yaml", YAML.format(kind="from-env"))))
    _write("trackhook.yaml", YAML.format(kind="from-yaml"))
    loaded = load_config({"experiment_tracker": {"type": "from-argument"}})
    assert loaded.config.trackers[0].type == "from-argument"


def test_trackhook_config_wins_over_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKHOOK_CONFIG", str(_write("env.yaml", YAML.format(kind="from-env"))))
    _write("trackhook.yaml", YAML.format(kind="from-yaml"))
    assert load_config().config.trackers[0].type == "from-env"


def test_trackhook_yaml_wins_over_pyproject() -> None:
    _write("trackhook.yaml", YAML.format(kind="from-yaml"))
    _write("pyproject.toml", '[tool.trackhook.experiment_tracker]\ntype = "from-pyproject"\n')
    assert load_config().config.trackers[0].type == "from-yaml"


def test_pyproject_tool_table_is_read() -> None:
    _write("pyproject.toml", '[tool.trackhook.experiment_tracker]\ntype = "from-pyproject"\n')
    assert load_config().config.trackers[0].type == "from-pyproject"


def test_a_path_argument_may_name_yaml_or_toml() -> None:
    _write("other.toml", '[tool.trackhook]\nexperiment_trackers = [{type = "a"}, {type = "b"}]\n')
    assert [t.type for t in load_config("other.toml").config.trackers] == ["a", "b"]


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKHOOK_CONFIG", "nowhere.yaml")
    with pytest.raises(trackhook.ConfigError, match=r"nowhere\.yaml.*TRACKHOOK_CONFIG"):
        load_config()


def test_broken_yaml_names_the_file() -> None:
    _write("trackhook.yaml", "experiment_tracker: [unclosed\n")
    with pytest.raises(trackhook.ConfigError, match=r"trackhook\.yaml: is not valid YAML"):
        load_config()


def test_an_unknown_top_level_field_names_the_file_and_field() -> None:
    _write("trackhook.yaml", "experiment_trackr:\n  type: mlflow\n")
    with pytest.raises(
        trackhook.ConfigError, match=r"trackhook\.yaml.*'experiment_trackr'"
    ) as caught:
        load_config()
    assert "did you mean 'experiment_tracker'?" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "hint"),
    [
        ({"delivery": {"flush_timout": 1}}, "did you mean 'flush_timeout'?"),
        ({"experiment_tracker": {"type": "x", "on_eror": "raise"}}, "did you mean 'on_error'?"),
        ({"experiment_trackers": [{"type": "x", "nmae": "a"}]}, "did you mean 'name'?"),
    ],
)
def test_a_misspelled_nested_field_gets_the_closest_field_and_the_list(
    config: dict[str, object], hint: str
) -> None:
    with pytest.raises(trackhook.ConfigError) as caught:
        load_config(config)
    assert hint in str(caught.value)
    assert "the fields are: " in str(caught.value)


def test_tracker_and_trackers_together_are_rejected() -> None:
    with pytest.raises(trackhook.ConfigError, match="not both"):
        load_config({"experiment_tracker": {"type": "a"}, "experiment_trackers": [{"type": "b"}]})


def test_two_trackers_with_one_name_are_rejected() -> None:
    with pytest.raises(trackhook.ConfigError, match="distinct `name:`"):
        load_config({"experiment_trackers": [{"type": "a"}, {"type": "a"}]})


def test_an_unknown_tracker_lists_the_installed_ones_and_the_package_to_install() -> None:
    _write("trackhook.yaml", YAML.format(kind="wandb"))
    with pytest.raises(trackhook.UnknownTrackerError) as caught:
        trackhook.start_run().__enter__()
    message = str(caught.value)
    assert "trackhook.yaml" in message
    assert "'wandb'" in message
    assert "do-nothing" in message
    assert "pip install trackhook-wandb" in message


def test_an_unknown_third_party_tracker_names_the_entry_point_group() -> None:
    with pytest.raises(trackhook.UnknownTrackerError, match=r"trackhook\.trackers"):
        trackhook.start_run(config={"experiment_tracker": {"type": "inhouse"}}).__enter__()


SETTINGS_PLUGIN = """
from pydantic import BaseModel, ConfigDict
import trackhook

class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    batch: int = 10

class Tracker:
    config_model = Settings

    def __init__(self, config):
        self.config = config

    @trackhook.hookimpl
    def trackhook_log_batch(self, metrics, params):
        pass
"""


def test_an_invalid_tracker_field_names_the_file_the_tracker_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "acme-tracker",
        {"acme_tracker": SETTINGS_PLUGIN},
        "acme = acme_tracker:Tracker",
    )
    _write(
        "trackhook.yaml",
        "experiment_tracker:\n  type: acme\n  config:\n    url: x\n    batch: many\n",
    )
    with pytest.raises(trackhook.ConfigError) as caught:
        trackhook.start_run().__enter__()
    message = str(caught.value)
    assert "trackhook.yaml" in message
    assert "tracker 'acme'" in message
    assert "'batch'" in message


def test_an_unknown_tracker_field_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "acme-tracker",
        {"acme_tracker": SETTINGS_PLUGIN},
        "acme = acme_tracker:Tracker",
    )
    with pytest.raises(trackhook.ConfigError, match="'urll'") as caught:
        trackhook.start_run(
            config={"experiment_tracker": {"type": "acme", "config": {"url": "x", "urll": 1}}}
        ).__enter__()
    assert "did you mean 'url'? the fields are: url, batch" in str(caught.value)


def test_a_tracker_that_fails_to_import_names_its_distribution_and_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "broken-tracker",
        {"broken_tracker": "import module_that_does_not_exist\n"},
        "broken = broken_tracker:Tracker",
    )
    config = {"experiment_tracker": {"type": "broken", "on_error": "raise"}}
    with pytest.raises(trackhook.TrackerLoadError) as caught:
        trackhook.start_run(config=config).__enter__()
    assert "broken-tracker" in str(caught.value)
    assert "module_that_does_not_exist" in str(caught.value)
    # By default (on_error: warn) the same words are a warning, and the run goes on without it.
    with pytest.warns(trackhook.TrackhookWarning, match="module_that_does_not_exist"):
        with trackhook.start_run(config={"experiment_tracker": {"type": "broken"}}) as run:
            trackhook.track_this(x=1)
    assert run.trackers == []
    assert run.user_defined_metrics == {"x": 1}


def test_only_the_configured_entry_points_are_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "broken-tracker",
        {"broken_tracker": "raise RuntimeError('imported')\n"},
        "broken = broken_tracker:Tracker",
    )
    with trackhook.start_run() as run:
        trackhook.track_this(x=1)
    assert run.status == "SUCCESS"


def test_secrets_never_reach_the_run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = SETTINGS_PLUGIN.replace("batch: int = 10", "api_token: str = ''")
    install(
        tmp_path,
        monkeypatch,
        "acme-tracker",
        {"acme_tracker": plugin},
        "acme = acme_tracker:Tracker",
    )
    config = {"url": "https://alice:hunter2@tracker.example/api", "api_token": "s3cr3t"}
    with trackhook.start_run(
        config={"experiment_tracker": {"type": "acme", "config": config}}
    ) as run:
        pass
    text = run.run_log_path.read_text()
    assert "hunter2" not in text
    assert "s3cr3t" not in text
    assert "alice" not in text
    assert "tracker.example/api" in text
