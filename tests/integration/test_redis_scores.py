"""RedisScoreSink against a real Redis: the dashboard's schema (docs/contracts.md §2)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from stack_endpoints import StackEndpoints

from worker.errors import SinkError
from worker.frames import FrameMeta, FrameResult
from worker.sinks.redis_scores import RedisScoreSink

pytestmark = pytest.mark.integration

TTL_S = 3600


def text(value: Any) -> Any:
    """Redis replies as str, whichever way the fixture's client decodes them."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(text(v) for v in value)
    return value


def result(
    frame_id: str, camera: str, captured_at: int, *, anomaly: bool, scored_at: int = 0
) -> FrameResult:
    return FrameResult(
        meta=FrameMeta(frame_id, "p1", camera, captured_at),
        score=0.73 if anomaly else 0.21,
        raw_score=0.412 if anomaly else 0.1,
        threshold=0.381,
        is_anomaly=anomaly,
        model_version="v1",
        scored_at_ms=scored_at or captured_at + 42,
        heatmap_uri=f"s3://rdqc-heatmaps/p1/{frame_id}.png" if anomaly else "",
        worker_id="w-1",
    )


@pytest.fixture
def sink(stack: StackEndpoints, redis_prefix: str) -> Iterator[RedisScoreSink]:
    sink = RedisScoreSink(stack.redis_url, prefix=redis_prefix, ttl_s=TTL_S, flagged_maxlen=2)
    sink.setup()
    yield sink
    sink.close()


def events_of(
    pubsub: redis.client.PubSub, count: int, timeout_s: float = 3.0
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            events.append(json.loads(text(message["data"])))
    return events


def test_the_full_schema_is_written_and_redelivery_adds_nothing(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"{redis_prefix}:events:p1")
    assert text(pubsub.get_message(timeout=2.0))["type"] == "subscribe"
    frames = [
        result("f1", "cam1", 1_000, anomaly=True),
        result("f2", "cam1", 3_000, anomaly=True),
        result("f3", "cam2", 2_000, anomaly=False),
    ]
    for frame in frames:
        sink.add(frame)
    sink.flush()

    for frame in frames:
        key = f"{redis_prefix}:frame:{frame.meta.frame_id}"
        assert text(redis_client.hgetall(key)) == frame.fields()
        assert 0 < redis_client.ttl(key) <= TTL_S
    stream = text(redis_client.xrange(f"{redis_prefix}:scores:p1"))
    assert [fields for _, fields in stream] == [frame.fields() for frame in frames]
    latest = {
        camera: json.loads(value)
        for camera, value in text(redis_client.hgetall(f"{redis_prefix}:latest:p1")).items()
    }
    assert sorted(latest) == ["cam1", "cam2"]
    assert latest["cam1"] == {
        "frame_id": "f2",
        "product_line": "p1",
        "camera_id": "cam1",
        "score": 0.73,
        "raw_score": 0.412,
        "threshold": 0.381,
        "is_anomaly": True,
        "model_version": "v1",
        "captured_at": 3_000,
        "scored_at": 3_042,
        "heatmap_uri": "s3://rdqc-heatmaps/p1/f2.png",
        "worker_id": "w-1",
    }
    assert latest["cam2"]["frame_id"] == "f3"
    assert latest["cam2"]["is_anomaly"] is False
    flagged = redis_client.zrange(f"{redis_prefix}:flagged:p1", 0, -1, withscores=True)
    assert text(flagged) == [("f1", 1_000.0), ("f2", 3_000.0)]
    events = events_of(pubsub, 3)
    assert [event["frame_id"] for event in events] == ["f1", "f2", "f3"]
    assert events[1] == latest["cam1"]

    # Kafka delivers f1 and f2 again, scored later by another model version.
    again = [replace(frame, scored_at_ms=9_999, model_version="v2") for frame in frames[:2]]
    for frame in again:
        sink.add(frame)
    sink.flush()

    assert redis_client.xlen(f"{redis_prefix}:scores:p1") == 3
    assert redis_client.zcard(f"{redis_prefix}:flagged:p1") == 2
    assert events_of(pubsub, 1, timeout_s=0.5) == []
    for frame in again:  # the hash is overwritten, and still expires
        key = f"{redis_prefix}:frame:{frame.meta.frame_id}"
        assert text(redis_client.hgetall(key)) == frame.fields()
        assert 0 < redis_client.ttl(key) <= TTL_S
    # latest still shows f2 (newest of cam1), now as rescored, matching its hash.
    latest_cam1 = json.loads(text(redis_client.hget(f"{redis_prefix}:latest:p1", "cam1")))
    assert (latest_cam1["frame_id"], latest_cam1["model_version"]) == ("f2", "v2")
    pubsub.close()


def test_latest_keeps_the_newest_frame_of_each_camera(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    sink.add(result("new", "cam1", 5_000, anomaly=False))
    sink.flush()
    sink.add(result("old", "cam1", 4_000, anomaly=False))  # arrives late, e.g. other partition
    sink.flush()

    latest = json.loads(text(redis_client.hget(f"{redis_prefix}:latest:p1", "cam1")))
    assert latest["frame_id"] == "new"
    assert redis_client.xlen(f"{redis_prefix}:scores:p1") == 2


def test_flagged_is_trimmed_to_the_newest(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    for index, captured_at in enumerate([3_000, 1_000, 2_000, 4_000]):
        sink.add(result(f"f{index}", "cam1", captured_at, anomaly=True))
    sink.flush()

    flagged = redis_client.zrange(f"{redis_prefix}:flagged:p1", 0, -1, withscores=True)
    assert text(flagged) == [("f0", 3_000.0), ("f3", 4_000.0)]


def test_flush_survives_a_dropped_connection(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    sink.add(result("f1", "cam1", 1_000, anomaly=False))
    sink.flush()
    killed = redis_client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1

    sink.add(result("f2", "cam1", 2_000, anomaly=False))
    sink.flush()

    assert redis_client.xlen(f"{redis_prefix}:scores:p1") == 2


def test_unreachable_redis_is_a_sink_error() -> None:
    sink = RedisScoreSink("redis://127.0.0.1:1/0", attempts=2, socket_timeout_s=0.5)
    with pytest.raises(SinkError, match="PING failed"):
        sink.setup()
    sink.add(result("f1", "cam1", 1_000, anomaly=False))
    with pytest.raises(SinkError, match="after 2 attempts"):
        sink.flush()
