"""The frame decoder: the header contract's defaults, and every reason a record is rejected.

tests/unit/test_hostile_frames.py holds the catalogue of hostile records.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from rdcore.data.images import sniff_image
from worker import frame_decoder
from worker.frame_decoder import DEFAULT_MAX_PIXELS, FrameDecoder
from worker.frames import DecodedFrame, Rejection, SourceRecord
from worker.settings import Settings

pytestmark = pytest.mark.unit

NOW_MS = 1_795_000_000_000


def png(width: int = 32, height: int = 24) -> bytes:
    image = np.full((height, width, 3), 127, dtype=np.uint8)
    return bytes(cv2.imencode(".png", image)[1].tobytes())


def record(
    value: bytes | None = None,
    headers: dict[str, bytes] | None = None,
    key: bytes | None = b"cam-7",
    timestamp_ms: int | None = 1_700_000_000_000,
) -> SourceRecord:
    headers = {"product_line": b"caps"} if headers is None else headers
    payload = png() if value is None else value
    return SourceRecord("frames", 3, 41, key, payload, tuple(headers.items()), timestamp_ms)


def decoder(**limits: int) -> FrameDecoder:
    settings = {"max_payload_bytes": 1 << 20, "min_dimension": 16, "max_dimension": 4096}
    return FrameDecoder(**(settings | limits), wall_clock_ms=lambda: NOW_MS)


def decoded(result: DecodedFrame | Rejection) -> DecodedFrame:
    assert isinstance(result, DecodedFrame), result
    return result


def rejected(result: DecodedFrame | Rejection) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


def test_a_good_frame_is_decoded_with_header_defaults() -> None:
    frame = decoded(decoder().decode(record()))
    assert frame.image.shape == (24, 32, 3)
    assert frame.image.dtype == np.uint8
    meta = frame.meta
    assert meta.product_line == "caps"
    assert meta.camera_id == "cam-7"  # the record key
    assert meta.frame_id == "frames:3:41"  # topic:partition:offset
    assert meta.captured_at_ms == 1_700_000_000_000  # the record timestamp
    assert meta.content_type is None


def test_headers_override_the_defaults() -> None:
    headers = {
        "product_line": b"caps",
        "camera_id": b"cam-9",
        "frame_id": b"cam-9-000123",
        "captured_at": b"1795000000042",
        "content_type": b"image/png",
    }
    meta = decoded(decoder().decode(record(headers=headers))).meta
    assert (meta.camera_id, meta.frame_id) == ("cam-9", "cam-9-000123")
    assert (meta.captured_at_ms, meta.content_type) == (1_795_000_000_042, "image/png")


def test_without_key_or_timestamp_camera_is_unknown_and_time_is_now() -> None:
    for missing_timestamp in (None, -1):  # Kafka reports "no timestamp" as -1
        meta = decoded(decoder().decode(record(key=None, timestamp_ms=missing_timestamp))).meta
        assert meta.camera_id == "unknown"
        assert meta.captured_at_ms == NOW_MS


def test_an_unrelated_binary_header_is_not_an_error() -> None:
    headers = {"product_line": b"caps", "traceparent": b"\xff\xfe"}
    decoded(decoder().decode(record(headers=headers)))


@pytest.mark.parametrize("headers", [{}, {"product_line": b""}, {"product_line": b"  "}])
def test_missing_product_line(headers: dict[str, bytes]) -> None:
    rejection = rejected(decoder().decode(record(headers=headers)))
    assert rejection.reason == "missing_product_line"
    assert rejection.record.offset == 41  # the untouched record goes to the dead letters


@pytest.mark.parametrize(
    "extra",
    [
        {"camera_id": b"\xff\xfecam"},  # not UTF-8
        {"product_line": b"\xc3\x28"},
        {"captured_at": b"yesterday"},
        {"captured_at": b"1.5e12"},
        {"captured_at": b"-5"},
    ],
)
def test_bad_header(extra: dict[str, bytes]) -> None:
    rejection = rejected(decoder().decode(record(headers={"product_line": b"caps"} | extra)))
    assert rejection.reason == "bad_header"
    assert rejection.message


def test_empty_payload() -> None:
    assert rejected(decoder().decode(record(value=b""))).reason == "empty_payload"


def test_payload_too_large_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(data: bytes, source: str) -> None:
        raise AssertionError("decoded a payload over the limit")

    monkeypatch.setattr(frame_decoder, "decode_image", must_not_decode)
    payload = png()
    rejection = rejected(decoder(max_payload_bytes=len(payload) - 1).decode(record(payload)))
    assert rejection.reason == "payload_too_large"
    assert str(len(payload)) in rejection.message


def test_undecodable() -> None:
    rejection = rejected(decoder().decode(record(value=png()[:40])))
    assert rejection.reason == "undecodable"
    assert rejection.error_class == "ImageReadError"


def test_unsupported_format() -> None:
    rejection = rejected(decoder().decode(record(value=b"not an image at all")))
    assert rejection.reason == "unsupported_format"
    assert "6e 6f 74 20" in rejection.message  # the first bytes, for whoever reads the DLQ


def test_pixel_limit() -> None:
    """Each side may be within bounds while the area is not."""
    rejection = rejected(decoder(max_pixels=32 * 24 - 1).decode(record(png(32, 24))))
    assert rejection.reason == "bad_dimensions"
    assert "768 pixels" in rejection.message
    decoded(decoder(max_pixels=32 * 24).decode(record(png(32, 24))))


def test_the_pixel_limit_is_a_validated_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [name for name in os.environ if name.upper().startswith("RDQC_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .stack/stack.env of the checkout
    assert Settings().max_pixels == DEFAULT_MAX_PIXELS
    monkeypatch.setenv("RDQC_MAX_PIXELS", "1000000")
    assert Settings().max_pixels == 1_000_000
    monkeypatch.setenv("RDQC_MAX_PIXELS", "255")  # below 16 x 16: no frame could pass
    with pytest.raises(ValidationError, match=re.escape("max_pixels (255) must be >= min_dim")):
        Settings()


@pytest.mark.parametrize("size", [(8, 32), (32, 8), (5000, 20)])
def test_bad_dimensions(size: tuple[int, int]) -> None:
    rejection = rejected(decoder().decode(record(png(*size))))
    assert rejection.reason == "bad_dimensions"
    assert f"{size[0]}x{size[1]}" in rejection.message


def test_a_declared_huge_image_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few bytes can declare a 60000x60000 image; decoding it would exhaust memory."""

    def must_not_decode(data: bytes, source: str) -> None:
        raise AssertionError("decoded an image whose header is out of bounds")

    monkeypatch.setattr(frame_decoder, "decode_image", must_not_decode)
    ihdr = struct.pack(">II5B", 60_000, 60_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    bomb = b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    assert rejected(decoder().decode(record(bomb))).reason == "bad_dimensions"


@pytest.mark.parametrize(
    ("ext", "image_format"), [(".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp")]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_sniff_image_reads_format_and_size(ext: str, image_format: str, channels: int) -> None:
    image = np.zeros((37, 53, channels)[: 2 if channels == 1 else 3], dtype=np.uint8)
    header = sniff_image(bytes(cv2.imencode(ext, image)[1].tobytes()))
    assert header is not None
    assert (header.format, header.size) == (image_format, (53, 37))


@pytest.mark.parametrize("ext", [".tiff", ".webp", ".ppm", ".jp2"])
def test_sniff_image_knows_no_other_format(ext: str) -> None:
    image = np.zeros((37, 53, 3), dtype=np.uint8)
    assert sniff_image(bytes(cv2.imencode(ext, image)[1].tobytes())) is None
    assert sniff_image(b"GIF89a...") is None
