"""Hostile records against a real worker: each gets its documented outcome, the worker stays up.

The catalogue goes through Kafka exactly as a misbehaving camera would send it, between good
frames. Outcomes (docs/contracts.md §1): a dead letter with the documented reason and the
original bytes (by reference when too large for the dead-letter topic), or, for an id that is
odd but valid, a score whose heatmap key stays inside its product line's prefix. Two cameras
that number their frames alike are both scored, and a product line whose published model has a
NaN threshold waits (nothing dead-lettered) until a good version is published.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from conftest import unique_name
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import UnknownTopicOrPartitionError
from minio import Minio
from stack_endpoints import StackEndpoints
from worker_harness import (
    commits_reach_end,
    make_artifact,
    publish,
    running_worker,
    send,
    synthetic_frames,
    wait_for,
    worker_settings,
)

from worker.modelstore.layout import pointer_key

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
NOW_MS = time.time_ns() // 1_000_000
Headers = dict[str, bytes]


def _encoded(extension: str, size: tuple[int, int] = (48, 48)) -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    return bytes(cv2.imencode(extension, image)[1].tobytes())


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4


def _bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info


def _catalogue() -> dict[str, tuple[bytes, Headers, str]]:
    """frame_id -> (payload, headers besides frame_id, expected dead-letter reason)."""
    good = _encoded(".png")
    jpeg = _encoded(".jpg", (64, 64))
    line = {"product_line": b"hostile", "camera_id": b"cam-x"}
    return {
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], line, "undecodable"),
        "jpeg-header-junk": (b"\xff\xd8\xff\xe0" + b"\x17" * 4000, line, "undecodable"),
        "png-huge": (_png_declaring(100_000, 100_000), line, "bad_dimensions"),
        "bmp-huge": (_bmp_declaring(60_000, -60_000), line, "bad_dimensions"),
        "tiff": (_encoded(".tiff"), line, "unsupported_format"),
        "webp": (_encoded(".webp"), line, "unsupported_format"),
        "pnm": (b"P6\n30000 30000\n255\n" + b"\x00" * 64, line, "unsupported_format"),
        "jpeg2000": (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64, line, "unsupported_format"),
        "zero-bytes": (b"", line, "empty_payload"),
        "oversized": (good + b"\x00" * (21 * MIB), line, "payload_too_large"),
        "captured-us": (good, line | {"captured_at": str(NOW_MS * 1000).encode()}, "bad_header"),
        "captured-ns": (good, line | {"captured_at": str(NOW_MS * 10**6).encode()}, "bad_header"),
        "captured-neg": (good, line | {"captured_at": b"-5"}, "bad_header"),
        "captured-text": (good, line | {"captured_at": b"yesterday"}, "bad_header"),
        "no-line": (good, {"camera_id": b"cam-x"}, "missing_product_line"),
        "huge-header": (good, line | {"camera_id": b"c" * 5000}, "bad_header"),
        "not-utf8": (good, line | {"camera_id": b"\xff\xfe"}, "bad_header"),
        "camera-traversal": (good, line | {"camera_id": b"../../etc"}, "bad_header"),
        "line-traversal": (good, {"product_line": b"../models", "camera_id": b"c"}, "bad_header"),
        "unknown-line": (
            good,
            {"product_line": b"no-such-line", "camera_id": b"c"},
            "unknown_product_line",
        ),
    }


def _dead_letters(
    stack: StackEndpoints, topic: str, count: int
) -> dict[str, tuple[Headers, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        max_partition_fetch_bytes=32 * MIB,
    )
    found: dict[str, tuple[Headers, bytes]] = {}
    try:
        for record in consumer:
            headers = dict(record.headers)
            found[headers.get("frame_id", b"").decode(errors="replace")] = (headers, record.value)
            if len(found) >= count:
                break
    finally:
        consumer.close()
    return found


def _publish_nan_threshold(minio: Minio, bucket: str, artifact: Path, line: str) -> None:
    """Upload an artifact whose manifest threshold is NaN, as a broken tool might: raw objects,
    bypassing `rdqc publish` (which refuses it)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["calibration"]["threshold"] = float("nan")
    files = {
        "model.safetensors": (artifact / "model.safetensors").read_bytes(),
        "manifest.json": json.dumps(manifest).encode(),
    }
    for name, data in files.items():
        minio.put_object(
            bucket, f"{line}/{manifest['model_version']}/{name}", io.BytesIO(data), len(data)
        )
    # A v1 pointer (no digest): such a manifest has none, since it cannot even be parsed.
    sha256 = manifest["weights"]["sha256"]
    pointer = json.dumps({"version": manifest["model_version"], "sha256": sha256}).encode()
    minio.put_object(bucket, pointer_key(line), io.BytesIO(pointer), len(pointer))


@pytest.fixture
def big_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    """A frames topic with room for a 21 MiB record; its dead-letter topic keeps the broker's
    default limit, so that record's dead letter must go by reference."""
    name = unique_name()
    kafka_admin.create_topics(
        {
            name: {
                "num_partitions": 2,
                "replication_factor": 1,
                "configs": {"max.message.bytes": str(32 * MIB)},
            }
        },
        timeout_ms=30_000,
        wait_for_metadata=True,
    )
    yield name
    with contextlib.suppress(UnknownTopicOrPartitionError):
        kafka_admin.delete_topics([name, f"{name}.dlq"], timeout_ms=30_000)


def test_hostile_records_get_their_documented_outcome_and_the_worker_stays_up(
    stack: StackEndpoints,
    big_topic: str,
    kafka_admin: KafkaAdminClient,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> None:
    topic = big_topic
    publish(minio_client, s3_bucket, make_artifact(tmp_path / "h", "hostile", "v1", 0), "hostile")
    broken = make_artifact(tmp_path / "nan", "nan-line", "v1", 1)
    _publish_nan_threshold(minio_client, s3_bucket, broken, "nan-line")
    catalogue = _catalogue()
    good = synthetic_frames(4, seed=9)

    producer = KafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", max_request_size=32 * MIB
    )
    send(stack, topic, good, "hostile", camera_id="cam-x", prefix="before-")
    for frame_id, (payload, headers, _) in catalogue.items():
        fields = [(k, v) for k, v in headers.items()] + [("frame_id", frame_id.encode())]
        producer.send(topic, key=b"cam-x", value=payload, headers=fields)
    for camera in (b"cam-1", b"cam-2"):  # two cameras numbering their frames alike
        fields = [("product_line", b"hostile"), ("camera_id", camera), ("frame_id", b"000123")]
        producer.send(topic, key=camera, value=good[0].payload, headers=fields)
    send(stack, topic, good[:1], "hostile", camera_id="cam-x", prefix="../../etc/")
    send(stack, topic, good[:2], "nan-line", camera_id="cam-n")
    producer.flush()
    producer.close()
    send(stack, topic, good, "hostile", camera_id="cam-x", prefix="after-")

    group = unique_name()
    settings = worker_settings(
        stack,
        topic=topic,
        group=group,
        redis_prefix=redis_prefix,
        model_bucket=s3_bucket,
        heatmap_bucket=heatmap_bucket,
        cache_dir=tmp_path / "cache",
    )
    hostile_key = f"{redis_prefix}:scores:hostile"
    nan_key = f"{redis_prefix}:scores:nan-line"
    with running_worker(settings):
        wait_for(lambda: int(redis_client.xlen(hostile_key)) >= 11, 180, "the good frames scored")
        dead = _dead_letters(stack, f"{topic}.dlq", len(catalogue))
        assert int(redis_client.xlen(nan_key)) == 0, "a NaN-threshold model scored frames"
        publish(
            minio_client,
            s3_bucket,
            make_artifact(tmp_path / "fix", "nan-line", "v2", 2),
            "nan-line",
        )
        wait_for(lambda: int(redis_client.xlen(nan_key)) == 2, 120, "the fixed line's frames")
        wait_for(commits_reach_end(stack, kafka_admin, group, topic), 120, "commits")

    reasons = {
        frame_id: headers["rdqc.error.reason"].decode() for frame_id, (headers, _) in dead.items()
    }
    assert reasons == {frame_id: expected for frame_id, (_, _, expected) in catalogue.items()}
    assert "nan-line" not in {h.get("product_line", b"").decode() for h, _ in dead.values()}
    for frame_id, (headers, value) in dead.items():
        original = catalogue[frame_id][0]
        if "rdqc.payload.uri" in headers:
            assert value == b""
            uri = headers["rdqc.payload.uri"].decode()
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            stored = minio_client.get_object(bucket, key).read()
            assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(original).hexdigest()
        else:
            assert value == original, frame_id
    assert "rdqc.payload.uri" in dead["oversized"][0]

    entries = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in redis_client.xrange(hostile_key)
    ]
    ids = [(e["camera_id"], e["frame_id"]) for e in entries]
    assert ids.count(("cam-1", "000123")) == 1
    assert ids.count(("cam-2", "000123")) == 1
    assert len(entries) == 4 + 4 + 2 + 1
    traversal = next(e for e in entries if e["frame_id"].startswith("../"))
    if traversal["heatmap_uri"]:
        key = traversal["heatmap_uri"].removeprefix(f"s3://{heatmap_bucket}/")
        assert key.startswith("hostile/") and "/../" not in f"/{key}"
