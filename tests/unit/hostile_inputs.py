"""Hostile inputs for the frame decoder's tests: payloads that lie about themselves, records.

Bombs are a few bytes whose header declares a huge image, built by hand; small real images of
other formats come from OpenCV's encoders.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from rdcore.data.images import RGBImage, decode_image
from worker import frame_decoder
from worker.frame_decoder import FrameDecoder
from worker.frames import DecodedFrame, FrameMeta, Rejection, SourceRecord

NOW_MS = 1_795_000_000_000
MIB = 1024 * 1024
DAY_MS = 24 * 3600 * 1000


def encode(ext: str, width: int = 32, height: int = 24, channels: int = 3) -> bytes:
    shape = (height, width, channels) if channels > 1 else (height, width)
    image = np.random.default_rng(7).integers(0, 255, shape, dtype=np.uint8)
    return bytes(cv2.imencode(ext, image)[1].tobytes())


def png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">II5B", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + crc


def jpeg_declaring(width: int, height: int) -> bytes:
    components = b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + components
    return b"\xff\xd8" + sof + b"\x00" * 64


def bmp_with(width: int, height: int, info_size: int = 40) -> bytes:
    data = bytearray(encode(".bmp"))
    struct.pack_into("<Iii", data, 14, info_size, width, height)
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (277, 3, 1, 3)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4


def webp_declaring(width: int, height: int) -> bytes:
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def jpeg_without_sof() -> bytes:
    jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + jfif + bytes(range(256)) * 8


def exif_rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose EXIF orientation (6: turn 90 degrees) makes OpenCV swap its sides."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    jpeg = encode(".jpg", width, height)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def record(
    value: bytes | None = None,
    headers: dict[str, bytes] | None = None,
    key: bytes | None = b"cam-7",
    timestamp_ms: int | None = NOW_MS - 1000,
) -> SourceRecord:
    all_headers = {"product_line": b"caps"} | (headers or {})
    payload = encode(".png") if value is None else value
    return SourceRecord("frames", 3, 41, key, payload, tuple(all_headers.items()), timestamp_ms)


@dataclass
class Decoder:
    """The production limits (RDQC_* defaults), with the full decoder's calls recorded."""

    calls: list[int] = field(default_factory=list)
    decoder: FrameDecoder = field(
        default_factory=lambda: FrameDecoder(20 * MIB, 16, 8192, wall_clock_ms=lambda: NOW_MS)
    )

    def decode(self, record: SourceRecord) -> DecodedFrame | Rejection:
        result = self.decoder.decode(record)
        assert isinstance(result, DecodedFrame | Rejection)
        return result


def record_full_decodes(monkeypatch: pytest.MonkeyPatch) -> Decoder:
    """A decoder whose full decodes (rdcore's ``decode_image``) are recorded in ``calls``."""
    decoder = Decoder()

    def recording_decode(data: bytes, source: str) -> RGBImage:
        decoder.calls.append(len(data))
        return decode_image(data, source)

    monkeypatch.setattr(frame_decoder, "decode_image", recording_decode)
    return decoder


def accepted(result: DecodedFrame | Rejection) -> FrameMeta:
    assert isinstance(result, DecodedFrame), result
    return result.meta
