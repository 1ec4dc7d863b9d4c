"""``trackhook.File`` and ``trackhook.Image``: files and images tracked as values.

::

    trackhook.track_this(step=5, checkpoint=trackhook.File("ckpt/epoch-5.pt"),
                         confusion=trackhook.Image(figure))

Both only remember what they were given: the content is read, encoded and copied into the run
store by ``track_this`` (``trackhook.held``), where errors name the key. This module imports
nothing heavy, so that ``trackhook.File`` costs nothing until it is tracked.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["File", "Image", "TrackedContent"]


class TrackedContent:
    """What ``track_this`` holds in the run store rather than in the spool: a file or an image."""

    __slots__ = ()


class File(TrackedContent):
    """Any file (a checkpoint, a report), tracked with its content as it is when tracked.

    :param path: the file; it must exist and be readable when ``track_this`` is called. Its name
        is the name trackers store it under.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"trackhook.File({str(self.path)!r})"


class Image(TrackedContent):
    """An image, delivered to trackers as an image (MLflow's ``log_image``, W&B media).

    :param data: a PNG or JPEG file's path (kept as it is), a PIL image, a numpy array (HxW,
        HxWx3 or HxWx4; ``uint8``, or floats in [0, 1]) or a matplotlib figure. Anything but a
        path is encoded as a PNG when ``track_this`` is called; arrays need pillow
        (``pip install 'trackhook[images]'``).
    """

    __slots__ = ("data",)

    def __init__(self, data: object) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"trackhook.Image({type(self.data).__name__})"
