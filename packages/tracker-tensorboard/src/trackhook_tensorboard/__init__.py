"""trackhook-tensorboard: the TensorBoard tracker of trackhook (``type: tensorboard``).

Importing this package does not import TensorBoard: the tracker imports it on its delivery thread
when a run opens. ``RunWriter``, the object ``get_experiment_tracker_context()`` yields, is
imported (with TensorBoard) on first use of its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trackhook_tensorboard.__about__ import __version__
from trackhook_tensorboard._config import TensorBoardConfig
from trackhook_tensorboard._folders import folder_name, run_folder
from trackhook_tensorboard._tracker import LIMITS, RUN_ID_HPARAM, TensorBoardTracker

if TYPE_CHECKING:
    from trackhook_tensorboard._writer import RunWriter, RunWriterClosedError

__all__ = [
    "LIMITS",
    "RUN_ID_HPARAM",
    "RunWriter",
    "RunWriterClosedError",
    "TensorBoardConfig",
    "TensorBoardTracker",
    "__version__",
    "folder_name",
    "run_folder",
]

_LAZY = frozenset({"RunWriter", "RunWriterClosedError"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from trackhook_tensorboard import _writer

        return getattr(_writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
