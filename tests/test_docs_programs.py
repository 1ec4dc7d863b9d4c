"""The documentation's programs run, its pages read the same on the repository host, the demo works.

A code block that is a complete program, test file or file of a package carries its file name as
a title (```` ```python title="train.py" ````); these tests copy each page's titled blocks, and
nothing else, into an empty folder and run them there: a program with ``python``, a test file
with ``pytest``, a package by installing it and running its tests (or, for a tracker package
without tests of its own, the tutorial's conformance tests).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TITLED_BLOCK = re.compile(
    r'^(?P<fence>`{3,})\w*[ \t]+title="(?P<title>[^"]+)"\n(?P<code>.*?)\n(?P=fence)$',
    re.MULTILINE | re.DOTALL,
)
TUTORIAL_TESTS = ROOT / "examples" / "trackhook-jsonl" / "tests" / "test_conformance.py"


def docs_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "trackhook_docs", ROOT / "docs" / "hooks" / "trackhook_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def titled_files(page: Path) -> dict[str, str]:
    """The page's titled code blocks: file name -> content."""
    text = page.read_text(encoding="utf-8")
    return {match["title"]: match["code"] + "\n" for match in TITLED_BLOCK.finditer(text)}


FRAMEWORK_PAGES = ROOT / "docs" / "integrations"
"""Pages whose programs train with Lightning, transformers, accelerate or Keras: they include the
files of examples/integrations, which `nox -s tests-integrations` runs where the frameworks are
(packages/core/tests_integrations/test_examples.py); this session has none of them."""


def pages_with_programs() -> list[Path]:
    return [page for page in pages() if titled_files(page) and FRAMEWORK_PAGES not in page.parents]


def test_the_framework_pages_show_the_examples_that_tests_integrations_runs() -> None:
    shown = {
        name: code
        for page in sorted(FRAMEWORK_PAGES.glob("*.md"))
        for name, code in titled_files(page).items()
    }
    examples = sorted((ROOT / "examples" / "integrations").glob("*_train.py"))
    assert sorted(shown) == [str(path.relative_to(ROOT)) for path in examples]
    for path in examples:
        assert shown[str(path.relative_to(ROOT))] == path.read_text(encoding="utf-8"), path.name


def run(command: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


def write_files(files: dict[str, str], folder: Path) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def install_into(target: Path, package: Path) -> None:
    """Build and install ``package`` (not its dependencies: they are here) into ``target``."""
    uv = shutil.which("uv")
    command = (
        [uv, "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(package)]
        if uv
        else [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "-t",
            str(target),
            str(package),
        ]
    )
    run(command, package)


def run_package(files: dict[str, str], folder: Path) -> None:
    """Install the package the files make, and run its tests, or else the tutorial's."""
    (pyproject,) = [name for name in files if Path(name).name == "pyproject.toml"]
    root = Path(pyproject).parent
    package = folder / "package"
    write_files({str(Path(n).relative_to(root)): c for n, c in files.items()}, package)
    tests = package / "tests"
    if not tests.is_dir():
        write_files({"test_conformance.py": TUTORIAL_TESTS.read_text(encoding="utf-8")}, tests)
    installed = folder / "installed"
    install_into(installed, package)
    # First on the path: this copy, not an installed one of the same name, provides the tracker.
    run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        folder,
        PYTHONPATH=str(installed),
    )


def run_programs(files: dict[str, str], folder: Path) -> None:
    write_files(files, folder)
    for name in files:
        if not name.endswith(".py"):
            continue  # a configuration file next to the programs
        if Path(name).name.startswith("test_"):
            run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name], folder)
        else:
            run([sys.executable, name], folder)


@pytest.mark.parametrize("page", pages_with_programs(), ids=lambda page: page.name)
def test_the_programs_and_packages_of_a_page_run_from_the_page_alone(
    page: Path, tmp_path: Path
) -> None:
    files = titled_files(page)
    if any(Path(name).name == "pyproject.toml" for name in files):
        run_package(files, tmp_path)
    else:
        run_programs(files, tmp_path)


def test_the_tutorial_shows_a_complete_plugin() -> None:
    names = {Path(name).name for name in titled_files(ROOT / "docs" / "plugins" / "tutorial.md")}
    assert {"pyproject.toml", "README.md", "__init__.py"} <= names


# -- pages that read well on the repository host (item 10) --------------------------------------


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_each_directive_is_followed_by_its_current_expansion(page: Path) -> None:
    hook = docs_hook()
    text = page.read_text(encoding="utf-8")
    assert hook.written(text) == text, (
        f"{page.relative_to(ROOT)} does not show what its directives expand to: "
        "run python docs/hooks/trackhook_docs.py"
    )


def test_the_site_gets_each_directive_expanded_afresh_without_the_written_copy() -> None:
    hook = docs_hook()
    page = ROOT / "docs" / "plugins" / "tutorial.md"
    stale = page.read_text(encoding="utf-8").replace(
        'jsonl = "trackhook_jsonl:JsonLinesTracker"', "a line that is not in the file"
    )
    site = hook.on_page_markdown(stale, page=None)
    assert "a line that is not in the file" not in site
    assert 'jsonl = "trackhook_jsonl:JsonLinesTracker"' in site
    assert "<!-- end -->" not in site


# -- the demo (item 13) -----------------------------------------------------------------------


def test_the_demo_delivers_one_run_to_mlflow_and_the_plugin_and_shows_it(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    done = run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(tmp_path / "out")], tmp_path
    )
    (run_id,) = re.findall(r"^run (\S+)$", done.stdout, re.MULTILINE)
    assert re.search(r"^tracker mlflow \(mlflow\): 17 delivered, 0 undelivered$", done.stdout, re.M)
    assert re.search(r"^tracker jsonl \(jsonl\): 17 delivered, 0 undelivered$", done.stdout, re.M)
    database = tmp_path / "out" / "mlflow.db"
    assert f"mlflow ui --backend-store-uri sqlite:///{database}" in done.stdout

    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.get_experiment_by_name("trackhook-demo")
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == run_id
    assert found.info.status == "FINISHED"
    assert [point.step for point in client.get_metric_history(found.info.run_id, "loss")] == [
        1, 2, 3, 4, 5
    ]  # fmt: skip
    received = [
        json.loads(line) for line in (tmp_path / "out" / "values.jsonl").read_text().splitlines()
    ]
    assert [line["step"] for line in received if line.get("key") == "loss"] == [1, 2, 3, 4, 5]
