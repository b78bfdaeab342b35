"""A camera simulator: publishes images from a folder or a video file with the header contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
from kafka import KafkaProducer

from rdcore.data.images import IMAGE_SUFFIXES, list_images
from rdcore.errors import DatasetError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".bmp": "image/bmp",
}


@dataclass(frozen=True)
class EncodedFrame:
    name: str
    payload: bytes
    content_type: str


def folder_frames(folder: Path) -> Iterator[EncodedFrame]:
    """Image files of a folder in name order, sent as they are (no re-encoding)."""
    paths = list_images(folder)
    if not paths:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for path in paths:
        yield EncodedFrame(path.stem, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()])


def video_frames(path: Path, jpeg_quality: int = 90) -> Iterator[EncodedFrame]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: cannot open video")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            encoded, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not encoded:
                raise DatasetError(f"{path}: frame {index} could not be encoded")
            yield EncodedFrame(f"{index:06d}", buffer.tobytes(), "image/jpeg")
            index += 1
    finally:
        capture.release()


def frames_from(source: Path) -> Iterator[EncodedFrame]:
    if source.is_dir():
        return folder_frames(source)
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return video_frames(source)
    raise DatasetError(
        f"{source}: neither a folder of images nor a video ({sorted(VIDEO_SUFFIXES)})"
    )


def send_frames(
    producer: KafkaProducer,
    topic: str,
    frames: Iterator[EncodedFrame],
    *,
    product_line: str,
    camera_id: str,
    rate: float,
    limit: int | None = None,
    frame_prefix: str = "",
) -> int:
    """Publish frames at ``rate`` per second (0 = as fast as possible); returns how many were sent.

    Pacing is against a fixed schedule, not a sleep per frame, so send latency does not slow the
    average rate.
    """
    start = time.monotonic()
    sent = 0
    for frame in frames:
        if limit is not None and sent >= limit:
            break
        if rate > 0:
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame_id = f"{frame_prefix}{camera_id}-{frame.name}"
        headers = [
            ("product_line", product_line.encode()),
            ("camera_id", camera_id.encode()),
            ("frame_id", frame_id.encode()),
            ("captured_at", str(time.time_ns() // 1_000_000).encode()),
            ("content_type", frame.content_type.encode()),
        ]
        producer.send(topic, key=camera_id.encode(), value=frame.payload, headers=headers)
        sent += 1
    producer.flush()
    return sent
