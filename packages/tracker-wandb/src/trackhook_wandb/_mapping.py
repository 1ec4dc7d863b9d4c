"""How trackhook's names and values become W&B's: pure rules, no ``wandb`` import.

- **run id**: W&B run ids end up in URLs and file names (``run-<id>.wandb``), and W&B refuses some
  characters. A ``run_id`` made of letters, digits, ``_``, ``-`` and ``.``, at most 64 characters
  long, is used unchanged; any other becomes ``<run_id with each other character replaced by "_",
  shortened>_<8 hex digits of the SHA-1 of the run_id>`` (the core's renaming rule, so two
  run_ids never share a W&B id). The run *name* is always the run_id itself.
- **project**: the tag, or the configured project when the tag is empty; a tag W&B cannot take
  (``/ \\ # ? % :`` or more than 128 characters) is made valid by the same rule.
- **steps**: W&B's own ``_step`` only moves forward and drops a value logged at a lower step. So the
  adapter never sets it: every value goes into a history row carrying the trackhook step as the
  metric ``trackhook/step``, which ``define_metric("*", step_metric="trackhook/step")`` makes the
  x-axis of every chart. A batch becomes one row per distinct step, in increasing step order (a
  key repeated at one step gets a further row); out-of-order and repeated steps are new rows,
  never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from trackhook import MetricRecord, TrackerLimits

__all__ = ["RESERVED_KEYS", "STEP_METRIC", "history_rows", "wandb_project", "wandb_run_id"]

STEP_METRIC = "trackhook/step"

_RUN_ID_RULE = TrackerLimits(key_chars=r"[A-Za-z0-9_.\-]", max_key_length=64)
_PROJECT_RULE = TrackerLimits(key_chars=r"[^/\\#?%:]", max_key_length=128)
# W&B writes these into every history row itself, and the adapter writes STEP_METRIC: a user's value
# under one of these names would be overwritten. Declared in the tracker's limits, so the core
# renames such a key by its one rule (and tells the user) before the adapter sees it.
RESERVED_KEYS = frozenset({"_step", "_runtime", "_timestamp", STEP_METRIC})


def wandb_run_id(run_id: str) -> str:
    """The W&B run id of the trackhook run ``run_id`` (see the module's rule)."""
    return _RUN_ID_RULE.storable_key(run_id)


def wandb_project(tag: str, default: str | None) -> str | None:
    """The W&B project of a run tagged ``tag``: the tag, else ``default`` (None: W&B decides)."""
    if not tag:
        return default
    return _PROJECT_RULE.storable_key(tag)


def history_rows(metrics: Sequence[MetricRecord]) -> list[dict[str, float]]:
    """The W&B history rows of a batch of metrics, in increasing step order.

    Each value is a point of its own: a key tracked twice at one step fills a second row of that
    step instead of overwriting the first, so what W&B shows does not depend on how values were
    batched.
    """
    by_step: dict[int, list[dict[str, float]]] = {}
    for metric in metrics:
        key = metric.key
        rows = by_step.setdefault(metric.step, [])
        row = next((row for row in rows if key not in row), None)
        if row is None:
            row = {STEP_METRIC: metric.step}
            rows.append(row)
        row[key] = metric.value
    return [row for step in sorted(by_step) for row in by_step[step]]
