"""The size and colour space of a PNG or JPEG, read from its header: TensorBoard's image summary
declares them, and reading them this way needs neither pillow nor decoding the image."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ImageHeader", "image_header"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
# TensorBoard's Summary.Image colour spaces by PNG colour type: grey, RGB, palette (RGB), grey and
# alpha, RGBA.
_PNG_COLORSPACE = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_JPEG_COLORSPACE = {1: 1, 3: 3}  # by number of components; CMYK (4) has no TensorBoard name
# Start-of-frame markers, which hold the size: every SOFn but DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length: TEM, RSTn, SOI, EOI.
_JPEG_BARE = frozenset({0x01, *range(0xD0, 0xDA)})


@dataclass(frozen=True)
class ImageHeader:
    """What an image summary declares of its image."""

    width: int
    height: int
    colorspace: int
    """TensorBoard's ``Summary.Image.colorspace``: 1 grey, 2 grey and alpha, 3 RGB, 4 RGBA."""


def image_header(data: bytes) -> ImageHeader | None:
    """The header of the PNG or JPEG ``data``, or ``None`` when it is neither (or truncated)."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 26:
        width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
        return ImageHeader(width, height, _PNG_COLORSPACE.get(colour, 3))
    if data.startswith(_JPEG_START):
        return _jpeg_header(data)
    return None


def _jpeg_header(data: bytes) -> ImageHeader | None:
    """Walk the JPEG's segments to the first start of frame."""
    position = len(_JPEG_START)
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_BARE:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_FRAMES and position + 10 <= len(data):
            height, width, components = struct.unpack(">HHB", data[position + 5 : position + 10])
            return ImageHeader(width, height, _JPEG_COLORSPACE.get(components, 3))
        position += 2 + length
    return None
