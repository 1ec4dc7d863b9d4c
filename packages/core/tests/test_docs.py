"""Meta-tests: the documentation covers every hook and command, and every hook is exercised."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import trackhook
from trackhook import hookspecs
from trackhook.testing import PerValueRecordingTracker, RecordingTracker, recording

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
TESTS = [
    *(ROOT / "packages" / "core" / "tests").glob("test_*.py"),
    *(ROOT / "tests").glob("test_*.py"),
]

needs_docs = pytest.mark.skipif(
    not (DOCS / "plugins" / "hooks.md").is_file(), reason="the docs are not in this checkout"
)


def documentation() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md")))


def signature_of(name: str) -> str:
    signature = inspect.signature(getattr(hookspecs, name))
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"def {name}({parameters}) -> {signature.return_annotation}: ..."


def docs_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trackhook_docs", DOCS / "hooks" / "trackhook_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compact(code: str) -> str:
    """Code without whitespace or trailing commas: the same whichever way a formatter wraps it."""
    return re.sub(r",\)", ")", re.sub(r"\s+", "", code))


@needs_docs
@pytest.mark.parametrize("name", hookspecs.__all__)
def test_every_hookspec_is_documented_with_its_exact_signature(name: str) -> None:
    page = (DOCS / "plugins" / "hooks.md").read_text(encoding="utf-8")
    assert compact(signature_of(name)) in compact(page)


@pytest.mark.parametrize("name", hookspecs.__all__)
def test_every_hookspec_is_named_by_a_test_other_than_this_one(name: str) -> None:
    here = Path(__file__).resolve()
    assert any(
        name in path.read_text(encoding="utf-8") for path in TESTS if path.resolve() != here
    ), f"no test mentions {name}"


def test_every_hookspec_is_called_in_a_run(tmp_path: Path) -> None:
    batched, per_value = RecordingTracker(), PerValueRecordingTracker()
    config = {
        "experiment_trackers": [{"type": "batched"}, {"type": "per-value"}],
        "run_log_store": str(tmp_path / "store"),
        "delivery": {"interval": 0.01},
    }
    with recording(batched, name="batched"), recording(per_value, name="per-value"):
        with trackhook.start_run(config=config):
            trackhook.track_this(loss=0.5, optimiser="adam")
            trackhook.track_this(report=trackhook.File(__file__))
            with trackhook.get_experiment_tracker_context("batched"):
                pass
    called = set(batched.names()) | set(per_value.names())
    assert called == set(hookspecs.__all__)


@needs_docs
def test_every_command_has_a_section_in_the_cli_page() -> None:
    from trackhook.cli import _parser

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = next(action for action in _parser()._actions if action.dest == "command").choices  # type: ignore[attr-defined]
    for command in commands:
        assert f"## `trackhook {command}`" in page


@needs_docs
def test_every_page_in_the_navigation_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", config, re.MULTILINE)
    assert len(pages) >= 10
    for page in pages:
        assert (DOCS / page).is_file(), page
    for path in DOCS.rglob("*.md"):
        assert str(path.relative_to(DOCS)) in pages, f"{path} is not in the navigation"


@needs_docs
def test_every_include_names_an_existing_file_and_section() -> None:
    hook = docs_hook()
    directives = re.findall(r"^<!-- (include|code): (.+?) -->$", documentation(), re.MULTILINE)
    assert directives
    for kind, argument in directives:
        text = hook.include(argument, 1) if kind == "include" else hook.code(argument)
        assert text.strip(), argument


@needs_docs
def test_the_configuration_reference_is_generated_from_the_core_models() -> None:
    table = docs_hook().config_model_table("trackhook.config:DeliverySettings")
    assert table.splitlines()[0] == "| field | type | default | meaning |"
    assert "| <code>flush_timeout</code> | <code>float</code> | <code>10.0</code> |" in table
    for model in ("TrackhookConfig", "TrackerSettings", "DeliverySettings"):
        assert f"<!-- config-model: trackhook.config:{model} -->" in documentation()
