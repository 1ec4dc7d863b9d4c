"""``trackhook plot RUN_ID [KEY ...] --out FILE.png``: metric curves against their steps.

Without keys it draws the curves (metrics tracked at two steps or more); ``--all`` adds the
single-point metrics, and keys named on the command line are drawn whatever their steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trackhook.cli._curves import Curve
from trackhook.cli._errors import CommandError
from trackhook.cli._runlogs import find_run, store_of

__all__ = ["plot_command", "plot_metrics"]

INSTALL_HINT = "pip install 'trackhook[plot]'"


def plot_command(arguments: argparse.Namespace) -> int:
    run = find_run(store_of(arguments.config), arguments.run_id)
    metrics = run.curves(arguments.keys)
    if not metrics and not arguments.keys:
        raise CommandError(
            f"run {run.run_id!r} has no metrics to plot",
            "a metric is a key whose every value is a number; `trackhook show` lists the values",
        )
    keys = list(arguments.keys) or _default_keys(run.run_id, metrics, every=arguments.all)
    unknown = [key for key in keys if key not in metrics]
    if unknown:
        raise CommandError(
            f"run {run.run_id!r} has no metric {', '.join(map(repr, unknown))}",
            f"its metrics are: {', '.join(run.curves()) or 'none'}",
        )
    out = Path(arguments.out or f"{run.run_id}.png")
    plot_metrics(run.run_id, {key: metrics[key] for key in keys}, out)
    print(f"wrote {out}")
    return 0


def _default_keys(run_id: str, metrics: dict[str, Curve], *, every: bool) -> list[str]:
    """The curves: metrics tracked at two steps or more; with ``every``, single points too.

    A single-point metric (a hyperparameter such as a learning rate, a final score) would be a
    panel holding one dot.
    """
    if every:
        return list(metrics)
    curves = [key for key, curve in metrics.items() if curve.tracked > 1]
    if not curves:
        raise CommandError(
            f"run {run_id!r} has no metric tracked at more than one step",
            "name the metrics to draw (`trackhook plot RUN_ID KEY ...`), or add --all",
        )
    return curves


def plot_metrics(title: str, metrics: dict[str, Curve], out: Path) -> None:
    """One panel per metric, sharing the step axis, written as a PNG to ``out``.

    A curve of more than ``CURVE_POINTS`` values arrives thinned (each bucket of steps keeps its
    lowest and highest value): its panel says how many values it holds.
    """
    pyplot = _pyplot()
    rows = len(metrics)
    figure, axes = pyplot.subplots(
        rows, 1, sharex=True, squeeze=False, figsize=(8, 1.2 + 2.2 * rows), layout="constrained"
    )
    for axis, (key, curve) in zip(axes[:, 0], metrics.items(), strict=True):
        few = curve.tracked < 30
        axis.plot(curve.steps, curve.values, marker="o" if few else None, linewidth=1.5)
        axis.set_ylabel(key)
        if curve.tracked > len(curve.steps):
            axis.set_title(f"{curve.tracked} values, lowest and highest of each bucket", fontsize=8)
        axis.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    figure.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    pyplot.close(figure)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CommandError(
            "`trackhook plot` needs matplotlib, which is not installed", f"{INSTALL_HINT}"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as pyplot

    return pyplot
