"""Reading and decoding images into 3-channel RGB uint8 arrays, with errors that name the source.

``sniff_image`` reads an image's format and declared size from its first bytes, without decoding.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.errors import ImageReadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

RGBImage = npt.NDArray[np.uint8]
ImageFormat = Literal["jpeg", "png", "bmp"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4, C8 and CC are other segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
# Start of scan and end of image: past them, no start-of-frame can come.
_JPEG_NO_SOF_AFTER = frozenset({0xD9, 0xDA})
_JPEG_FILL = re.compile(rb"\xff+")
# Real files have a few dozen segments before the size; walking millions of tiny hostile
# ones would cost seconds of CPU per frame.
_JPEG_MAX_SEGMENTS = 4096
# BMP info headers of 36 bytes or more (BITMAPINFOHEADER and later) have 32-bit signed sizes,
# the 12-byte OS/2 one 16-bit unsigned sizes; OpenCV reads no other.
_BMP_OS2_HEADER = 12
_BMP_MIN_INFO_HEADER = 36


def decode_image(data: bytes, source: str) -> RGBImage:
    """Decode JPEG/PNG/BMP bytes to an (H, W, 3) RGB array; grayscale and alpha become RGB."""
    if not data:
        raise ImageReadError(f"{source}: empty image payload")
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(
            f"{source}: not a decodable JPEG, PNG or BMP image ({len(data)} bytes)"
        )
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def read_image(path: Path) -> RGBImage:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return decode_image(data, str(path))


def read_mask(path: Path) -> npt.NDArray[np.bool_]:
    """A ground-truth mask as a boolean (H, W) array: any non-zero pixel is anomalous."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read mask: {exc.strerror or exc}") from exc
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if mask is None:
        raise ImageReadError(f"{path}: not a decodable mask image")
    return np.asarray(mask > 0)


def encode_png(image: RGBImage) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageReadError("PNG encoding failed")
    return bytes(buffer.tobytes())


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's first bytes say about it, read without decoding."""

    format: ImageFormat
    # (width, height) as declared; None when the header is cut short or never states it (a JPEG
    # with no start-of-frame segment), so no decoder could read the image either.
    size: tuple[int, int] | None


def sniff_image(data: bytes) -> ImageHeader | None:
    """The format and declared size of JPEG, PNG or BMP bytes; None for any other format.

    Cheap and safe on hostile bytes: a few bytes can declare a gigapixel image, so callers check
    the size here before ``decode_image`` allocates it.
    """
    # The fewest bytes that claim the format: a damaged rest of the PNG signature, or no marker
    # after a JPEG's start of image, makes a broken image of that format, not another format.
    if data.startswith(b"\x89PNG"):
        return ImageHeader("png", _png_size(data))
    if data.startswith(b"\xff\xd8"):
        return ImageHeader("jpeg", _jpeg_size(data))
    if data.startswith(b"BM"):
        return ImageHeader("bmp", _bmp_size(data))
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return None  # IHDR is always the first chunk
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 18:
        return None
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == _BMP_OS2_HEADER and len(data) >= 22:
        width, height = struct.unpack_from("<HH", data, 18)
    elif info_size >= _BMP_MIN_INFO_HEADER and len(data) >= 26:
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        return None
    # A negative height means rows stored top-down; a negative width is simply out of bounds.
    return int(width), abs(int(height))


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        fill = _JPEG_FILL.match(data, i)
        if fill is None or fill.end() >= len(data):
            return None
        i = fill.end() - 1  # the last 0xFF before the marker
        marker = data[i + 1]
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, i + 5)
            # A height of 0 means "given later" (a DNL segment), which OpenCV's libjpeg rejects.
            return (int(width), int(height)) if height else None
        if marker in _JPEG_NO_SOF_AFTER:
            return None
        if marker in _JPEG_STANDALONE:
            i += 2
        elif i + 4 > len(data):
            return None
        else:
            i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None
