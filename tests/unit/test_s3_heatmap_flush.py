"""S3HeatmapSink.flush waits a bounded time: an upload still running then fails the flush, keeps
running, stays pending, and is confirmed by a later flush without being uploaded twice."""

from __future__ import annotations

import threading
import time
from typing import BinaryIO, cast

import pytest
from minio import Minio

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.sinks.s3_heatmaps import S3HeatmapSink

pytestmark = pytest.mark.unit

META = FrameMeta("cam-1-000001", "caps", "cam-1", 1_795_000_000_000)


class StuckStore:
    """The part of minio's client the sink uses; ``put_object`` hangs until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put_object(
        self, bucket: str, key: str, data: BinaryIO, length: int, content_type: str
    ) -> None:
        self.puts += 1
        self.release.wait(timeout=10)
        self.objects[f"{bucket}/{key}"] = data.read(length)


def test_a_flush_waits_at_most_its_timeout_and_the_upload_stays_pending() -> None:
    store = StuckStore()
    sink = S3HeatmapSink(cast(Minio, store), "heatmaps", flush_timeout_s=0.2)
    uri = sink.add(META, b"png")

    started = time.monotonic()
    with pytest.raises(SinkError, match=r"1 uploads still running \(cam-1-000001\)"):
        sink.flush()
    assert time.monotonic() - started < 2

    store.release.set()
    sink.flush()
    sink.close()

    assert uri == "s3://heatmaps/caps/2026-11-18/cam-1/cam-1-000001.png"
    assert store.objects == {"heatmaps/caps/2026-11-18/cam-1/cam-1-000001.png": b"png"}
    assert store.puts == 1  # still running is not failed: never uploaded twice


def test_flush_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="flush_timeout_s"):
        S3HeatmapSink(cast(Minio, StuckStore()), "heatmaps", flush_timeout_s=0)
