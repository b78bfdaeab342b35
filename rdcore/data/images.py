"""Reading and decoding images into 3-channel RGB uint8 arrays, with errors that name the source."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.errors import ImageReadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

RGBImage = npt.NDArray[np.uint8]


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
