"""trackhook's MLflow tracker: values tracked with trackhook land in MLflow experiments and runs.

Configure it with ``type: mlflow`` (see ``MlflowConfig`` for its settings). Importing this package
does not import MLflow: the tracker imports it on its delivery thread when a run opens.
"""

from __future__ import annotations

from trackhook_mlflow.__about__ import __version__
from trackhook_mlflow._tracker import (
    LATEST_TAG_PREFIX,
    LIMITS,
    LONG_PARAM_FOLDER,
    RUN_ID_TAG,
    MlflowTracker,
    MlflowTrackerError,
)
from trackhook_mlflow.config import MlflowConfig

__all__ = [
    "LATEST_TAG_PREFIX",
    "LIMITS",
    "LONG_PARAM_FOLDER",
    "RUN_ID_TAG",
    "MlflowConfig",
    "MlflowTracker",
    "MlflowTrackerError",
    "__version__",
]
