"""S3HeatmapSink against a real MinIO: keys, content type, hostile ids (docs/contracts.md §3)."""

from __future__ import annotations

import uuid

import pytest
from minio import Minio

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.sinks.s3_heatmaps import S3HeatmapSink

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n not really a heatmap"
CAPTURED_AT = 1_795_000_000_000  # 2026-11-18 UTC


def test_heatmap_lands_at_the_documented_key_as_png(minio_client: Minio, s3_bucket: str) -> None:
    sink = S3HeatmapSink(minio_client, s3_bucket)
    sink.setup()
    meta = FrameMeta("cam-07-000123", "bottle-caps", "cam-07", CAPTURED_AT)

    uri = sink.add(meta, PNG)
    sink.flush()
    sink.close()

    key = "bottle-caps/2026-11-18/cam-07/cam-07-000123.png"
    assert uri == sink.uri_for(meta) == f"s3://{s3_bucket}/{key}"
    stat = minio_client.stat_object(s3_bucket, key)
    assert stat.content_type == "image/png"
    response = minio_client.get_object(s3_bucket, key)
    try:
        assert response.read() == PNG
    finally:
        response.close()
        response.release_conn()


def test_a_hostile_frame_id_stays_inside_its_prefix(minio_client: Minio, s3_bucket: str) -> None:
    sink = S3HeatmapSink(minio_client, s3_bucket)
    sink.setup()
    for frame_id in ("../../etc/passwd", "/abs/path", "..", "a\\..\\b", "x\x00y"):
        sink.add(FrameMeta(frame_id, "p1", "cam1", CAPTURED_AT), PNG)
    sink.flush()
    sink.close()

    keys = sorted(obj.object_name for obj in minio_client.list_objects(s3_bucket, recursive=True))
    assert len(keys) == 5
    for key in keys:
        assert key.startswith("p1/2026-11-18/cam1/")
        name = key.removeprefix("p1/2026-11-18/cam1/")
        assert "/" not in name
        assert not name.startswith(".")


def test_setup_creates_a_missing_bucket(minio_client: Minio) -> None:
    bucket = f"test-created-{uuid.uuid4().hex[:12]}"
    sink = S3HeatmapSink(minio_client, bucket)
    try:
        sink.setup()
        assert minio_client.bucket_exists(bucket)
        sink.setup()  # a second worker starting finds it there
    finally:
        if minio_client.bucket_exists(bucket):
            minio_client.remove_bucket(bucket)


def test_a_failed_upload_fails_the_flush_and_names_the_frame(minio_client: Minio) -> None:
    sink = S3HeatmapSink(minio_client, f"test-missing-{uuid.uuid4().hex[:12]}")

    sink.add(FrameMeta("frame-that-failed", "p1", "cam1", CAPTURED_AT), PNG)

    with pytest.raises(SinkError, match="frame-that-failed"):
        sink.flush()
    sink.close()
