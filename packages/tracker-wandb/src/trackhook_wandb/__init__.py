"""trackhook-wandb: the Weights & Biases tracker of trackhook (``type: wandb``).

Importing this package does not import ``wandb``: the SDK is loaded by the tracker's delivery
thread when a run opens, so configuring W&B costs the user's code nothing until values flow.
"""

from __future__ import annotations

from trackhook_wandb.__about__ import __version__
from trackhook_wandb._config import WandbConfig
from trackhook_wandb._mapping import RESERVED_KEYS, STEP_METRIC, wandb_project, wandb_run_id
from trackhook_wandb._tracker import WandbRunNotOpenError, WandbTracker

__all__ = [
    "RESERVED_KEYS",
    "STEP_METRIC",
    "WandbConfig",
    "WandbRunNotOpenError",
    "WandbTracker",
    "__version__",
    "wandb_project",
    "wandb_run_id",
]
