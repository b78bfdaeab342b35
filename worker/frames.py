"""The records that flow through the worker: polled records, frame metadata, results, rejections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rdcore.data.images import RGBImage


@dataclass(frozen=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True)
class SourceRecord:
    """One record as polled, untouched: what goes to the dead-letter topic if it is rejected."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> str | None:
        """The UTF-8 value of the last header called ``name``; None when absent."""
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode("utf-8")
        return None

    def frame_id_or_position(self, sep: str, *, strict: bool = False) -> str:
        """The frame-id header; ``{topic}{sep}{partition}{sep}{offset}`` when it is absent or empty.

        A frame id that is not UTF-8 falls back too, unless ``strict``: then UnicodeDecodeError
        propagates, for the frame decoder to reject the record as a bad header.
        """
        try:
            frame_id = self.header("frame_id")
        except UnicodeDecodeError:
            if strict:
                raise
            frame_id = None
        return frame_id or f"{self.topic}{sep}{self.partition}{sep}{self.offset}"


# The header contract's limits (docs/contracts.md §1). Ids go into Redis keys, object keys and
# file names, and every value into logs and dead-letter headers.
MAX_HEADER_BYTES = 1024
MAX_FRAME_ID_CHARS = 256
MAX_CONTENT_TYPE_CHARS = 100
EARLIEST_CAPTURED_AT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
# How far ahead of the worker's clock a capture time may be: camera clocks drift, but more than a
# day ahead is a wrong unit or a broken clock.
MAX_CAPTURED_AT_AHEAD_MS = 24 * 3600 * 1000


def is_frame_id(value: str) -> bool:
    """1-256 printable characters without whitespace: ``cam-07-000123``, ``frames:3:41``."""
    return (
        0 < len(value) <= MAX_FRAME_ID_CHARS
        and value.isprintable()
        and not any(char.isspace() for char in value)
    )


def captured_at_unit_hint(value_ms: int, now_ms: int) -> str:
    """What unit an out-of-window capture time seems to be in, for the rejection message."""
    for unit, per_ms in (("microseconds", 1000), ("nanoseconds", 1_000_000)):
        if EARLIEST_CAPTURED_AT_MS <= value_ms // per_ms <= now_ms + MAX_CAPTURED_AT_AHEAD_MS:
            return f"; this looks like {unit}"
    if EARLIEST_CAPTURED_AT_MS <= value_ms * 1000 <= now_ms + MAX_CAPTURED_AT_AHEAD_MS:
        return "; this looks like seconds"
    return ""


@dataclass(frozen=True)
class FrameMeta:
    """What the header contract says about a frame (docs/contracts.md)."""

    frame_id: str
    product_line: str
    camera_id: str
    captured_at_ms: int
    content_type: str | None = None


RejectReason = Literal[
    "missing_product_line",
    "bad_header",
    "empty_payload",
    "payload_too_large",
    "undecodable",
    "bad_dimensions",
    "unsupported_format",
    "unknown_product_line",
    "scoring_failed",
    "non_finite_score",
]


@dataclass(frozen=True)
class Rejection:
    """A record that cannot be scored, with why; it goes to the dead-letter sink."""

    record: SourceRecord
    reason: RejectReason
    error_class: str
    message: str


@dataclass
class DecodedFrame:
    """A frame that passed validation: its record, metadata and RGB pixels."""

    record: SourceRecord
    meta: FrameMeta
    image: RGBImage


@dataclass(frozen=True)
class FrameResult:
    """The score of one frame, as written to every score sink (docs/contracts.md)."""

    meta: FrameMeta
    score: float
    raw_score: float
    threshold: float
    is_anomaly: bool
    model_version: str
    scored_at_ms: int
    heatmap_uri: str
    worker_id: str

    def fields(self) -> dict[str, str]:
        """The flat string fields of the Redis hash and stream entry, in contract order."""
        return {
            "frame_id": self.meta.frame_id,
            "product_line": self.meta.product_line,
            "camera_id": self.meta.camera_id,
            "score": f"{self.score:.6f}",
            "raw_score": f"{self.raw_score:.6f}",
            "threshold": f"{self.threshold:.6f}",
            "is_anomaly": "1" if self.is_anomaly else "0",
            "model_version": self.model_version,
            "captured_at": str(self.meta.captured_at_ms),
            "scored_at": str(self.scored_at_ms),
            "heatmap_uri": self.heatmap_uri,
            "worker_id": self.worker_id,
        }
