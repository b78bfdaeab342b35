"""Validating and decoding polled records into frames, or rejecting them with a reason.

Pure and stateless, so the pipeline runs it on a thread pool: OpenCV's decoders release the GIL.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import cv2

from rdcore.data.images import decode_image
from rdcore.errors import ImageReadError
from worker.frames import DecodedFrame, FrameMeta, Rejection, RejectReason, SourceRecord

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4, C8 and CC are other segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


class FrameContractError(ValueError):
    """A record breaks the frame contract; ``reason`` is its dead-letter reason."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FrameDecoder:
    """Checks a record against the header contract (docs/contracts.md §1) and decodes it."""

    def __init__(
        self,
        max_payload_bytes: int,
        min_dimension: int,
        max_dimension: int,
        wall_clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._max_payload_bytes = max_payload_bytes
        self._min_dimension = min_dimension
        self._max_dimension = max_dimension
        self._wall_clock_ms = wall_clock_ms

    def decode(self, record: SourceRecord) -> DecodedFrame | Rejection:
        try:
            meta = self._meta(record)
            self._check_payload(record.value)
            image = decode_image(record.value, f"frame {meta.frame_id}")
            height, width = image.shape[:2]
            self._check_dimensions(width, height)
        except FrameContractError as exc:
            return Rejection(record, exc.reason, type(exc).__name__, str(exc))
        except UnicodeDecodeError as exc:
            # Only the contract's own headers are decoded, so another binary header is fine.
            return Rejection(record, "bad_header", type(exc).__name__, f"non-UTF-8 header: {exc}")
        except (ImageReadError, cv2.error) as exc:
            # cv2.error too: a frame that crashed the decoder must not crash the worker, or its
            # redelivery would crash the next one.
            return Rejection(record, "undecodable", type(exc).__name__, str(exc))
        return DecodedFrame(record, meta, image)

    def _meta(self, record: SourceRecord) -> FrameMeta:
        """The frame's metadata, with the contract's defaults for optional headers."""
        product_line = (record.header("product_line") or "").strip()
        if not product_line:
            raise FrameContractError(
                "missing_product_line", "header 'product_line' is missing or empty"
            )
        return FrameMeta(
            frame_id=record.frame_id_or_position(":", strict=True),
            product_line=product_line,
            camera_id=record.header("camera_id") or _camera_from_key(record.key),
            captured_at_ms=self._captured_at(record),
            content_type=record.header("content_type") or None,
        )

    def _captured_at(self, record: SourceRecord) -> int:
        text = record.header("captured_at")
        if text is None:
            timestamp = record.timestamp_ms
            # Kafka reports a missing timestamp as -1.
            return timestamp if timestamp is not None and timestamp >= 0 else self._wall_clock_ms()
        try:
            value = int(text.strip())
        except ValueError:
            raise FrameContractError(
                "bad_header", f"header 'captured_at' is not integer milliseconds: {text[:40]!r}"
            ) from None
        if value < 0:
            raise FrameContractError("bad_header", f"header 'captured_at' is negative: {value}")
        return value

    def _check_payload(self, payload: bytes) -> None:
        if not payload:
            raise FrameContractError("empty_payload", "the record has no payload")
        if len(payload) > self._max_payload_bytes:
            raise FrameContractError(
                "payload_too_large",
                f"payload of {len(payload)} bytes exceeds the limit of {self._max_payload_bytes}",
            )
        # Checked before decoding: a small file can declare a huge image and exhaust memory.
        declared = declared_size(payload)
        if declared is not None:
            self._check_dimensions(*declared)

    def _check_dimensions(self, width: int, height: int) -> None:
        low, high = self._min_dimension, self._max_dimension
        if not (low <= width <= high and low <= height <= high):
            raise FrameContractError(
                "bad_dimensions", f"image is {width}x{height}; each side must be in [{low}, {high}]"
            )


def _camera_from_key(key: bytes | None) -> str:
    try:
        return (key or b"").decode("utf-8") or "unknown"
    except UnicodeDecodeError:
        return "unknown"


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or BMP header without decoding; None when not found."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"BM") and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 header: 16-bit sizes
            width, height = struct.unpack("<HH", data[18:22])
        else:
            width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))  # negative height: top-down rows
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            # A height of 0 means "given later" (DNL segment): leave it to the decoder.
            return (int(width), int(height)) if height else None
        elif marker in _JPEG_STANDALONE:
            i += 2
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None
