# /// script
# dependencies = ["nox[uv]>=2025.2.9"]
# ///
# (`python3 -m pip install nox` is enough: a nox without uv reads the block above, makes itself an
# environment with nox[uv] in .nox/_nox_script_mode and runs there, so every session uses uv.)
"""Sessions of the trackhook monorepo; run ``nox -l`` to list them.

Each package is tested in an environment of its own that installs only that package and the core,
from their folders and not editable, so an undeclared dependency fails here rather than for users.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
CORE = "./packages/core"
PACKAGES = {
    "core": "packages/core",
    "mlflow": "packages/tracker-mlflow",
    "wandb": "packages/tracker-wandb",
    "tensorboard": "packages/tracker-tensorboard",
}
EXAMPLE_PLUGIN = "./examples/trackhook-jsonl"


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *paths, *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """The core package alone."""
    session.install(f"{CORE}[test]")
    _pytest(session, "packages/core/tests")


@nox.session(name="tests-mlflow")
def tests_mlflow(session: nox.Session) -> None:
    """trackhook-mlflow with the core; its test extra brings the full mlflow for a real server."""
    session.install(CORE, "./packages/tracker-mlflow[test]")
    _pytest(session, "packages/tracker-mlflow/tests")


@nox.session(name="tests-wandb")
def tests_wandb(session: nox.Session) -> None:
    """trackhook-wandb with the core, offline; mlflow is not installed here."""
    session.install(CORE, "./packages/tracker-wandb[test]")
    _pytest(session, "packages/tracker-wandb/tests")


# A CPU build of torch on disk, if there is one (CI's machines have it): the frameworks' tests
# need no GPU, and torch from the package index is a CUDA build of several GB.
TORCH_WHEELS = Path(os.environ.get("TRACKHOOK_TORCH_WHEELS", "/opt/wheels"))
FRAMEWORKS = "lightning,transformers,accelerate,keras"


def _torch(session: nox.Session) -> str:
    """The local CPU wheel of torch for this Python, else ``torch`` from the index.

    A session without ``python=`` runs on the interpreter that runs nox: its tag is this one's.
    """
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted(TORCH_WHEELS.glob(f"torch-*+cpu-{tag}-{tag}-*.whl"))
    if wheels:
        return str(wheels[-1])
    session.warn(f"no CPU wheel of torch for {tag} in {TORCH_WHEELS}: torch from the index")
    return "torch"


def _install_frameworks(session: nox.Session) -> None:
    """The core with every framework it bridges (CPU torch), and trackhook-mlflow."""
    session.install(
        _torch(session),
        f"{CORE}[test,{FRAMEWORKS}]",
        "./packages/tracker-mlflow[test]",
        EXAMPLE_PLUGIN,  # a tracker that the two processes of a DDP fit start in no time
    )


@nox.session(name="tests-integrations")
def tests_integrations(session: nox.Session) -> None:
    """The framework bridges (trackhook.integrations) in real trainings on CPU, with the MLflow
    adapter; offline: no model or data set is downloaded."""
    _install_frameworks(session)
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "KERAS_BACKEND": "torch"}
    session.run(
        "pytest",
        "packages/core/tests_integrations",
        *session.posargs,
        env={"PYTHONDONTWRITEBYTECODE": "1", **offline},
    )


# The lower bounds the adapters declare in their pyproject.toml, tested by the "-oldest" sessions
# below (keep them equal); `nox -s tests` runs them after the newest releases. MLflow 3.5 imports
# a class that SQLAlchemy 2.1 removed (FallbackAsyncAdaptedQueuePool), so its oldest run uses
# SQLAlchemy 2.0.
OLDEST_MLFLOW = ("mlflow==3.5.0", "mlflow-skinny==3.5.0", "sqlalchemy<2.1")
OLDEST_WANDB = ("wandb==0.30.0",)


@nox.session(name="tests-mlflow-oldest")
def tests_mlflow_oldest(session: nox.Session) -> None:
    """trackhook-mlflow's suite against the oldest MLflow it declares support for."""
    session.install(CORE, "./packages/tracker-mlflow[test]", *OLDEST_MLFLOW)
    _pytest(session, "packages/tracker-mlflow/tests")


@nox.session(name="tests-wandb-oldest")
def tests_wandb_oldest(session: nox.Session) -> None:
    """trackhook-wandb's suite against the oldest wandb it declares support for."""
    session.install(CORE, "./packages/tracker-wandb[test]", *OLDEST_WANDB)
    _pytest(session, "packages/tracker-wandb/tests")


@nox.session(name="tests-tensorboard")
def tests_tensorboard(session: nox.Session) -> None:
    """trackhook-tensorboard with the core; no TensorFlow, torch, mlflow or wandb here."""
    session.install(CORE, "./packages/tracker-tensorboard[test]")
    _pytest(session, "packages/tracker-tensorboard/tests")


@nox.session(name="tests-cross")
def tests_cross(session: nox.Session) -> None:
    """The plugin contract across packages, and the example third-party plugin."""
    session.install(
        f"{CORE}[test]",
        "./packages/tracker-mlflow",
        "./packages/tracker-wandb",
        "./packages/tracker-tensorboard",
        EXAMPLE_PLUGIN,
    )
    _pytest(session, "tests", "examples/trackhook-jsonl/tests")


@nox.session
def tests(session: nox.Session) -> None:
    """Lint first, then every test session above, each in its own environment."""
    for name in (
        "lint",
        "tests-core",
        "tests-cross",
        "tests-wandb",
        "tests-wandb-oldest",
        "tests-mlflow",
        "tests-mlflow-oldest",
        "tests-tensorboard",
        "tests-integrations",
        "docs",
    ):
        session.notify(name)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (MkDocs, Material, mkdocstrings) with --strict."""
    # The adapters and the example plugin are installed without their dependencies: the site
    # needs only their configuration models (for the generated configuration reference).
    session.install("mkdocs", "mkdocs-material", "mkdocstrings[python]", "ruff", f"{CORE}[cli]")
    session.install(
        "--no-deps",
        "./packages/tracker-mlflow",
        "./packages/tracker-wandb",
        "./packages/tracker-tensorboard",
        EXAMPLE_PLUGIN,
    )
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and a strict type check of the core and of each adapter.

    The adapters are installed with their dependencies (mlflow-skinny, wandb, tensorboard) so that
    mypy reads each tracker library as its users get it; pyproject.toml's [tool.mypy] says which
    of those libraries' parts are untyped. mypy checks the sources in the checkout, not the copies
    installed here.
    """
    adapters = [f"./{folder}" for name, folder in PACKAGES.items() if name != "core"]
    session.install("ruff", "mypy", "types-PyYAML", f"{CORE}[test]", *adapters)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", *(f"{folder}/src" for folder in PACKAGES.values()))


@nox.session
def build(session: nox.Session) -> None:
    """Build each package, check its files, and install each wheel alone in a fresh venv."""
    session.install("build", "twine", "check-wheel-contents")
    dist = ROOT / "dist"
    for path in dist.glob("*"):
        path.unlink()
    for folder in PACKAGES.values():
        session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist), folder)
    wheels = sorted(glob.glob(str(dist / "*.whl")))
    session.run("check-wheel-contents", *wheels)
    session.run("twine", "check", "--strict", *glob.glob(str(dist / "*")))
    core_wheel = next(w for w in wheels if os.path.basename(w).startswith("trackhook-"))
    imports = {
        "trackhook-": "trackhook",
        "trackhook_mlflow-": "trackhook_mlflow",
        "trackhook_wandb-": "trackhook_wandb",
        "trackhook_tensorboard-": "trackhook_tensorboard",
    }
    for wheel in wheels:
        module = next(
            m for prefix, m in imports.items() if os.path.basename(wheel).startswith(prefix)
        )
        venv = ROOT / ".nox" / f"wheel-{module}"
        session.run("uv", "venv", "--quiet", "--clear", str(venv), external=True)
        python = str(venv / "bin" / "python")
        session.run(
            "uv", "pip", "install", "--quiet", "--python", python, wheel, core_wheel, external=True
        )
        session.run(
            python, "-c", f"import {module}; print({module}.__name__, 'imports')", external=True
        )


@nox.session
def demo(session: nox.Session) -> None:
    """Track a simulated run into MLflow (sqlite), TensorBoard and a plugin at once; show it.

    No server: the trackers are embedded. What it makes stays in .nox/demo-output, with the
    commands to open it in MLflow's and TensorBoard's own UIs printed at the end.
    """
    session.install(
        CORE,
        "./packages/tracker-mlflow",
        "./packages/tracker-tensorboard",
        EXAMPLE_PLUGIN,
    )
    session.run("python", "examples/demo.py", str(ROOT / ".nox" / "demo-output"))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of the core, and of each adapter against its tracker's own client."""
    session.install(
        CORE,
        "./packages/tracker-mlflow[test]",
        "./packages/tracker-wandb",
        "./packages/tracker-tensorboard",
        "tensorboardX",
        "numpy",
        "pillow",
    )
    for script in (
        "bench/bench_core.py",
        "bench/bench_mlflow.py",
        "bench/bench_wandb.py",
        "bench/bench_tensorboard.py",
        "bench/bench_long_runs.py",
        "bench/bench_files.py",
    ):
        if (ROOT / script).exists():
            session.run("python", script)


@nox.session(name="bench-integrations")
def bench_integrations(session: nox.Session) -> None:
    """A Lightning fit to a mlflow server: no logger, MLFlowLogger, TrackhookLogger."""
    _install_frameworks(session)
    session.run("python", "bench/bench_lightning.py")
