"""What a ``trackhook.Image`` holds: a PNG or JPEG file as it is, anything else encoded as a PNG.

A path is checked by its signature (the first bytes of a PNG or a JPEG) and kept as it is: no
library is needed, and a JPEG stays a JPEG. A PIL image and a matplotlib figure are encoded by
their own library (which the caller has, having made one). A numpy array is checked (HxW, HxWx3
or HxWx4; ``uint8``, or floats in [0, 1]) and encoded with pillow, imported only then: without it
the error names the extra to install, ``trackhook[images]``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trackhook.errors import InvalidValueError, ValuesRejected
from trackhook.records import FileRecord

__all__ = ["IMAGES_EXTRA", "png_of", "readable_image_path", "refused_unless_pillow_reads"]

IMAGES_EXTRA = "pip install 'trackhook[images]'"
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_CHANNELS = (3, 4)
_WHAT = (
    "an Image takes a PNG or JPEG path, a PIL image, a numpy array (HxW, HxWx3 or HxWx4; uint8, "
    "or floats in [0, 1]) or a matplotlib figure"
)


def readable_image_path(key: str, data: object) -> Path | None:
    """``data`` as the path of a PNG or JPEG file; ``None`` when it is not a path at all.

    :raises InvalidValueError: the path is missing, not a file, or neither a PNG nor a JPEG.
    """
    if not isinstance(data, (str, os.PathLike)):
        return None
    path = Path(data)
    try:
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError as error:
        reason = f"the image {str(path)!r} cannot be read: {error.strerror}"
        raise InvalidValueError(key, reason) from None
    if not any(head.startswith(signature) for signature in _SIGNATURES):
        raise InvalidValueError(
            key, f"the image {str(path)!r} is neither a PNG nor a JPEG (by its first bytes)"
        )
    return path


def png_of(key: str, data: object) -> bytes:
    """The PNG encoding of a PIL image, a matplotlib figure or a numpy array.

    :raises InvalidValueError: ``data`` is none of these, or an array of the wrong shape, type
        or range, or pillow is missing for an array.
    """
    module = type(data).__module__.split(".")[0]
    if module == "PIL" and callable(getattr(data, "save", None)):
        return _png_of_pil(key, data)
    if module == "matplotlib" and callable(getattr(data, "savefig", None)):
        buffer = io.BytesIO()
        data.savefig(buffer, format="png")  # type: ignore[attr-defined]
        return buffer.getvalue()
    if hasattr(data, "__array_interface__"):
        return _png_of_pil(key, _pil_image_of_array(key, data))
    raise InvalidValueError(key, f"{_WHAT}; got a {type(data).__name__}")


def _png_of_pil(key: str, image: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except OSError:  # a mode PNG cannot hold (CMYK, ...)
        buffer = io.BytesIO()
        image.convert("RGBA").save(buffer, format="PNG")
    except ValueError as error:
        raise InvalidValueError(key, f"the image cannot be encoded as a PNG: {error}") from error
    return buffer.getvalue()


def _pil_image_of_array(key: str, array: Any) -> Any:
    """A PIL image of a checked array; floats in [0, 1] become ``uint8`` first."""
    shape = tuple(array.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in _CHANNELS)) or 0 in shape:
        raise InvalidValueError(
            key, f"an image array must be HxW, HxWx3 or HxWx4 and not empty, got shape {shape}"
        )
    kind = array.dtype.kind
    if kind == "f":
        low, high = array.min(), array.max()
        if not (low >= 0.0 and high <= 1.0):  # NaN fails both
            raise InvalidValueError(
                key, f"a float image array must hold values in [0, 1], got [{low}, {high}]"
            )
        array = (array * 255.0).round().astype("uint8")
    elif str(array.dtype) != "uint8":
        raise InvalidValueError(
            key, f"an image array must be uint8, or floats in [0, 1], got {array.dtype}"
        )
    try:
        import numpy
        from PIL import Image as PILImage
    except ImportError as error:
        raise InvalidValueError(
            key, f"encoding an image array needs pillow ({error}): {IMAGES_EXTRA}"
        ) from None
    return PILImage.fromarray(numpy.ascontiguousarray(array))


@contextmanager
def refused_unless_pillow_reads(file: FileRecord) -> Iterator[None]:
    """For a tracker that hands a tracked image to pillow (MLflow's ``log_image``,
    ``wandb.Image``): content pillow cannot read is refused for good (``ValuesRejected``), since
    offering it again would never help."""
    from PIL import UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    try:
        yield
    except (UnidentifiedImageError, DecompressionBombError) as error:
        raise ValuesRejected(f"pillow cannot read {file.name!r} as an image") from error
