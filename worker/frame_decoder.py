"""Validating and decoding polled records into frames, or rejecting them with a reason.

Pure and stateless, so the pipeline runs it on a thread pool: OpenCV's decoders release the GIL.
Every record comes from outside, so ``FrameDecoder.decode`` never raises: whatever a record holds,
it becomes a frame or a rejection, and the worker keeps running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import cv2
import structlog

from rdcore.artifacts.manifest import check_safe_name
from rdcore.data.images import decode_image, sniff_image
from rdcore.errors import ArtifactError, ImageReadError
from worker.frames import (
    EARLIEST_CAPTURED_AT_MS,
    MAX_CAPTURED_AT_AHEAD_MS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_HEADER_BYTES,
    DecodedFrame,
    FrameMeta,
    Rejection,
    RejectReason,
    SourceRecord,
    captured_at_unit_hint,
    is_frame_id,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000  # RDQC_MAX_PIXELS's default
_MILLISECONDS = "milliseconds since the Unix epoch"
# Digits only: int() would also take "1_000", "+5" and non-ASCII digits. Header values are short.
_INTEGER = re.compile(r"-?[0-9]+")


class FrameContractError(ValueError):
    """A record breaks the frame contract; ``reason`` is its dead-letter reason."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FrameDecoder:
    """Checks a record against the frame contract (docs/contracts.md §1) and decodes it."""

    def __init__(
        self,
        max_payload_bytes: int,
        min_dimension: int,
        max_dimension: int,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        wall_clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._max_payload_bytes = max_payload_bytes
        self._min_dimension = min_dimension
        self._max_dimension = max_dimension
        self._max_pixels = max_pixels
        self._wall_clock_ms = wall_clock_ms

    def decode(self, record: SourceRecord) -> DecodedFrame | Rejection:
        try:
            meta = self._meta(record)
            declared = self._check_payload(record.value)
            image = decode_image(record.value, f"frame {meta.frame_id}")
            height, width = image.shape[:2]
            # An EXIF orientation makes OpenCV turn a JPEG a quarter, which swaps its sides.
            if declared not in ((width, height), (height, width)):
                raise FrameContractError(
                    "undecodable",
                    f"decoded {width}x{height}, but its header declares "
                    f"{declared[0]}x{declared[1]}",
                )
        except FrameContractError as exc:
            return Rejection(record, exc.reason, type(exc).__name__, str(exc))
        except (ImageReadError, cv2.error) as exc:
            return Rejection(record, "undecodable", type(exc).__name__, str(exc))
        except Exception as exc:
            # Unexpected, so logged with its traceback; but one frame must never crash the worker,
            # or its redelivery would crash the next one.
            log.warning("frame_decode_failed", offset=record.offset, exc_info=True)
            return Rejection(record, "undecodable", type(exc).__name__, str(exc) or repr(exc))
        return DecodedFrame(record, meta, image)

    def _meta(self, record: SourceRecord) -> FrameMeta:
        """The frame's metadata, with the contract's defaults for optional headers."""
        product_line = (_header(record, "product_line") or "").strip()
        if not product_line:
            raise FrameContractError(
                "missing_product_line", "header 'product_line' is missing or empty"
            )
        camera_id = _header(record, "camera_id")
        frame_id = _header(record, "frame_id")
        if frame_id and not is_frame_id(frame_id):
            raise FrameContractError(
                "bad_header",
                f"header 'frame_id' {_excerpt(frame_id)} is not 1-256 printable characters "
                "without whitespace",
            )
        content_type = _header(record, "content_type")
        if content_type and not (
            len(content_type) <= MAX_CONTENT_TYPE_CHARS and content_type.isprintable()
        ):
            raise FrameContractError(
                "bad_header",
                f"header 'content_type' {_excerpt(content_type)} is not at most "
                f"{MAX_CONTENT_TYPE_CHARS} printable characters",
            )
        return FrameMeta(
            frame_id=frame_id or record.frame_id_or_position(":"),
            product_line=_safe_name("product_line", product_line),
            camera_id=_safe_name("camera_id", camera_id) if camera_id else _camera(record.key),
            captured_at_ms=self._captured_at(record),
            content_type=content_type or None,
        )

    def _captured_at(self, record: SourceRecord) -> int:
        text = (_header(record, "captured_at") or "").strip()
        if not text:
            timestamp = record.timestamp_ms
            # Kafka reports a missing timestamp as -1.
            if timestamp is None or timestamp < 0:
                return self._wall_clock_ms()
            source, value = "the record timestamp (no 'captured_at' header)", timestamp
        else:
            if not _INTEGER.fullmatch(text):
                raise FrameContractError(
                    "bad_header",
                    f"header 'captured_at' {_excerpt(text)} is not an integer: expected "
                    f"{_MILLISECONDS}",
                )
            source, value = "header 'captured_at'", int(text)
        now_ms = self._wall_clock_ms()
        latest = now_ms + MAX_CAPTURED_AT_AHEAD_MS
        if not EARLIEST_CAPTURED_AT_MS <= value <= latest:
            raise FrameContractError(
                "bad_header",
                f"{source} is {value}, outside [{EARLIEST_CAPTURED_AT_MS}, {latest}] "
                f"({_utc(EARLIEST_CAPTURED_AT_MS)} to 1 day after the worker's clock, "
                f"{_utc(latest)}): expected {_MILLISECONDS}"
                f"{captured_at_unit_hint(value, now_ms)}",
            )
        return value

    def _check_payload(self, payload: bytes) -> tuple[int, int]:
        """The image's declared (width, height), checked before decoding: a few bytes can declare
        a gigapixel image, and decoding it would exhaust memory."""
        if not payload:
            raise FrameContractError("empty_payload", "the record has no payload")
        if len(payload) > self._max_payload_bytes:
            raise FrameContractError(
                "payload_too_large",
                f"payload of {len(payload)} bytes exceeds the limit of {self._max_payload_bytes}",
            )
        header = sniff_image(payload)
        if header is None:
            raise FrameContractError(
                "unsupported_format",
                f"payload starts with {payload[:8].hex(' ')}: not JPEG, PNG or BMP",
            )
        if header.size is None:
            raise FrameContractError(
                "undecodable", f"the {header.format.upper()} header states no image size"
            )
        self._check_dimensions(*header.size)
        return header.size

    def _check_dimensions(self, width: int, height: int) -> None:
        low, high = self._min_dimension, self._max_dimension
        if not (low <= width <= high and low <= height <= high):
            raise FrameContractError(
                "bad_dimensions", f"image is {width}x{height}; each side must be in [{low}, {high}]"
            )
        if width * height > self._max_pixels:
            raise FrameContractError(
                "bad_dimensions",
                f"image is {width}x{height} = {width * height} pixels; the limit is "
                f"{self._max_pixels}",
            )


def _header(record: SourceRecord, name: str) -> str | None:
    """The UTF-8 value of the last header ``name``, at most ``MAX_HEADER_BYTES``; None if absent."""
    for key, value in reversed(record.headers):
        if key != name:
            continue
        if len(value) > MAX_HEADER_BYTES:
            raise FrameContractError(
                "bad_header",
                f"header {name!r} is {len(value)} bytes; the limit is {MAX_HEADER_BYTES}",
            )
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameContractError("bad_header", f"header {name!r} is not UTF-8: {exc}") from None
    return None


def _safe_name(header: str, value: str) -> str:
    try:
        return check_safe_name(header, value)
    except ArtifactError:
        raise FrameContractError(
            "bad_header",
            f"header {header!r} {_excerpt(value)} is not a safe name: use 1-128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit",
        ) from None


def _camera(key: bytes | None) -> str:
    """The camera id the record key gives, or ``unknown`` when the key is no valid camera id."""
    try:
        return check_safe_name("camera_id", (key or b"").decode("utf-8"))
    except (UnicodeDecodeError, ArtifactError):
        return "unknown"


def _excerpt(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:64] + "...")


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
