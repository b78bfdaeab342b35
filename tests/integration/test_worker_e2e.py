"""The worker end to end against the real stack: Kafka in, Redis and MinIO out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import unique_name
from kafka import KafkaAdminClient, KafkaConsumer
from minio import Minio
from stack_endpoints import StackEndpoints
from worker_harness import (
    commits_reach_end,
    make_artifact,
    publish,
    running_worker,
    send,
    settings_env,
    synthetic_frames,
    wait_for,
    worker_settings,
)

from worker.settings import Settings

CONTRACT_FIELDS = {
    "frame_id",
    "product_line",
    "camera_id",
    "score",
    "raw_score",
    "threshold",
    "is_anomaly",
    "model_version",
    "captured_at",
    "scored_at",
    "heatmap_uri",
    "worker_id",
}


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(
    stack: StackEndpoints,
    kafka_topic: str,
    redis_prefix: str,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> SettingsFactory:
    """Worker settings on this test's topic, key prefix and buckets; a fresh group by default."""

    def make(group: str | None = None, **overrides: Any) -> Settings:
        return worker_settings(
            stack,
            topic=kafka_topic,
            group=group or unique_name(),
            redis_prefix=redis_prefix,
            model_bucket=s3_bucket,
            heatmap_bucket=heatmap_bucket,
            cache_dir=tmp_path / "cache",
            **overrides,
        )

    return make


def stream(client: redis.Redis[bytes], key: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(key)]


def stream_total(client: redis.Redis[bytes], prefix: str, lines: list[str]) -> int:
    return sum(int(client.xlen(f"{prefix}:scores:{line}")) for line in lines)


def test_frames_of_two_product_lines_are_scored_exactly_once_and_committed(
    stack: StackEndpoints,
    make_settings: SettingsFactory,
    kafka_topic: str,
    kafka_admin: KafkaAdminClient,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> None:
    lines = ["line-a", "line-b"]
    for seed, line in enumerate(lines):
        publish(minio_client, s3_bucket, make_artifact(tmp_path / line, line, "v1", seed), line)
    frames = synthetic_frames(100, seed=7)
    for line in lines:
        send(stack, kafka_topic, frames, line, camera_id=f"{line}-cam", prefix=f"{line}-")
    group = unique_name()
    settings = make_settings(group)

    with running_worker(settings):
        wait_for(lambda: stream_total(redis_client, redis_prefix, lines) >= 200, 180, "200 scores")
        wait_for(commits_reach_end(stack, kafka_admin, group, kafka_topic), 60, "commits")

    for line in lines:
        entries = stream(redis_client, f"{redis_prefix}:scores:{line}")
        ids = [e["frame_id"] for e in entries]
        assert sorted(ids) == sorted(f"{line}-{line}-cam-{f.name}" for f in frames)
        for entry in entries:
            assert set(entry) == CONTRACT_FIELDS
            assert entry["product_line"] == line and entry["model_version"] == "v1"
            assert 0.0 <= float(entry["score"]) <= 1.0
            frame_key = f"{line}:{entry['camera_id']}:{entry['frame_id']}"
            stored = redis_client.hgetall(f"{redis_prefix}:frame:{frame_key}")
            assert {k.decode(): v.decode() for k, v in stored.items()} == entry
            if entry["is_anomaly"] == "1":
                bucket, _, key = entry["heatmap_uri"].removeprefix("s3://").partition("/")
                assert bucket == heatmap_bucket
                assert minio_client.stat_object(bucket, key).content_type == "image/png"
            else:
                assert entry["heatmap_uri"] == ""
        flagged = {f"{e['camera_id']}:{e['frame_id']}" for e in entries if e["is_anomaly"] == "1"}
        assert 0 < len(flagged) < len(entries)
        members = redis_client.zrange(f"{redis_prefix}:flagged:{line}", 0, -1)
        assert {m.decode() for m in members} == flagged
        assert redis_client.hexists(f"{redis_prefix}:latest:{line}", f"{line}-cam")

    redelivery_group = unique_name()
    replay = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"group_id": redelivery_group})}
    )
    with running_worker(replay):
        wait_for(
            commits_reach_end(stack, kafka_admin, redelivery_group, kafka_topic),
            180,
            "the redelivery group to commit every frame",
        )
    assert stream_total(redis_client, redis_prefix, lines) == 200


def test_bad_frames_go_to_the_dead_letter_topic_and_good_ones_around_them_are_scored(
    stack: StackEndpoints,
    make_settings: SettingsFactory,
    kafka_topic: str,
    kafka_admin: KafkaAdminClient,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    from kafka import KafkaProducer

    publish(minio_client, s3_bucket, make_artifact(tmp_path / "a", "line-a", "v1", 0), "line-a")
    good = synthetic_frames(6, seed=3)
    send(stack, kafka_topic, good[:3], "line-a", prefix="before-")
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    bad = {
        "no-line": (good[0].payload, [("frame_id", b"no-line")]),
        "garbage": (b"\x00not an image", [("product_line", b"line-a"), ("frame_id", b"garbage")]),
        "empty": (b"", [("product_line", b"line-a"), ("frame_id", b"empty")]),
        "unknown": (good[0].payload, [("product_line", b"no-such"), ("frame_id", b"unknown")]),
    }
    for value, headers in bad.values():
        producer.send(kafka_topic, key=b"cam-01", value=value, headers=headers)
    producer.flush()
    producer.close()
    send(stack, kafka_topic, good[3:], "line-a", prefix="after-")
    group = unique_name()
    settings = make_settings(group)

    with running_worker(settings):
        wait_for(commits_reach_end(stack, kafka_admin, group, kafka_topic), 120, "commits")

    assert int(redis_client.xlen(f"{redis_prefix}:scores:line-a")) == 6
    consumer = KafkaConsumer(
        f"{kafka_topic}.dlq",
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    dead = {}
    for record in consumer:
        headers = {k: v.decode() for k, v in record.headers}
        dead[headers.get("frame_id", "")] = (headers, record.value)
        if len(dead) == len(bad):
            break
    consumer.close()
    reasons = {frame_id: headers["rdqc.error.reason"] for frame_id, (headers, _) in dead.items()}
    assert reasons == {
        "no-line": "missing_product_line",
        "garbage": "unsupported_format",
        "empty": "empty_payload",
        "unknown": "unknown_product_line",
    }
    headers, value = dead["garbage"]
    assert value == bad["garbage"][0]
    assert headers["rdqc.source.topic"] == kafka_topic
    assert headers["rdqc.error.message"]


def test_a_model_published_mid_stream_is_picked_up_without_a_restart(
    stack: StackEndpoints,
    make_settings: SettingsFactory,
    kafka_topic: str,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    publish(minio_client, s3_bucket, make_artifact(tmp_path / "v1", "line-a", "v1", 0), "line-a")
    frames = synthetic_frames(8, seed=5)
    key = f"{redis_prefix}:scores:line-a"
    settings = make_settings()

    with running_worker(settings):
        send(stack, kafka_topic, frames, "line-a", prefix="old-")
        wait_for(lambda: int(redis_client.xlen(key)) >= 8, 120, "frames scored by v1")
        publish(
            minio_client, s3_bucket, make_artifact(tmp_path / "v2", "line-a", "v2", 1), "line-a"
        )
        # The store polls pointers every second; give it time to load and warm v2 up.
        time.sleep(5)
        send(stack, kafka_topic, frames, "line-a", prefix="new-")
        wait_for(lambda: int(redis_client.xlen(key)) >= 16, 120, "frames scored by v2")

    versions = {e["frame_id"]: e["model_version"] for e in stream(redis_client, key)}
    assert {v for f, v in versions.items() if f.startswith("old-")} == {"v1"}
    assert {v for f, v in versions.items() if f.startswith("new-")} == {"v2"}


def test_sigterm_drains_and_a_restarted_worker_loses_nothing(
    stack: StackEndpoints,
    make_settings: SettingsFactory,
    kafka_topic: str,
    kafka_admin: KafkaAdminClient,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    publish(minio_client, s3_bucket, make_artifact(tmp_path / "a", "line-a", "v1", 0), "line-a")
    frames = synthetic_frames(200, seed=11)
    send(stack, kafka_topic, frames, "line-a")
    group = unique_name()
    settings = make_settings(
        group, batching={"max_size": 4, "max_wait_ms": 20, "max_queue": 16}, shutdown_grace_s=15
    )
    env = {**os.environ, **settings_env(settings)}
    command = [str(Path(sys.executable).with_name("rdqc")), "worker"]
    key = f"{redis_prefix}:scores:line-a"

    first = subprocess.Popen(command, env=env)
    try:
        wait_for(lambda: int(redis_client.xlen(key)) >= 20, 120, "the first worker to score")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert int(redis_client.xlen(key)) < 200, "the stream finished before SIGTERM: no drain tested"

    second = subprocess.Popen(command, env=env)
    try:
        wait_for(commits_reach_end(stack, kafka_admin, group, kafka_topic), 180, "commits")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            second.kill()
    ids = [e["frame_id"] for e in stream(redis_client, key)]
    assert sorted(ids) == sorted(f"cam-01-{f.name}" for f in frames)
