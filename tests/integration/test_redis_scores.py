"""RedisScoreSink against a real Redis: the dashboard's schema (docs/contracts.md §2)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from stack_endpoints import StackEndpoints

from worker.errors import SinkError
from worker.frames import FrameMeta, FrameResult
from worker.sinks.redis_scores import RedisScoreSink
from worker.sinks.score_json import result_json

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
    frame_id: str,
    camera: str,
    captured_at: int,
    *,
    anomaly: bool,
    line: str = "p1",
    model_version: str = "v1",
) -> FrameResult:
    return FrameResult(
        meta=FrameMeta(frame_id, line, camera, captured_at),
        score=0.73 if anomaly else 0.21,
        raw_score=0.412 if anomaly else 0.1,
        threshold=0.381,
        is_anomaly=anomaly,
        model_version=model_version,
        scored_at_ms=captured_at + 42,
        heatmap_uri=f"s3://rdqc-heatmaps/{line}/{frame_id}.png" if anomaly else "",
        worker_id="w-1",
    )


def frame_key(prefix: str, frame: FrameResult) -> str:
    meta = frame.meta
    return f"{prefix}:frame:{meta.product_line}:{meta.camera_id}:{meta.frame_id}"


def stream_of(client: redis.Redis, prefix: str, line: str = "p1") -> list[dict[str, str]]:
    return [fields for _, fields in text(client.xrange(f"{prefix}:scores:{line}"))]


def latest_of(client: redis.Redis, prefix: str, line: str = "p1") -> dict[str, dict[str, Any]]:
    stored = text(client.hgetall(f"{prefix}:latest:{line}"))
    return {camera: json.loads(value) for camera, value in stored.items()}


@pytest.fixture
def sink(stack: StackEndpoints, redis_prefix: str) -> Iterator[RedisScoreSink]:
    sink = RedisScoreSink(stack.redis_url, prefix=redis_prefix, ttl_s=TTL_S, flagged_maxlen=2)
    sink.setup()
    yield sink
    sink.close()


def subscribed(client: redis.Redis, *channels: str) -> redis.client.PubSub:
    pubsub = client.pubsub()
    pubsub.subscribe(*channels)
    for _ in channels:
        assert text(pubsub.get_message(timeout=2.0))["type"] == "subscribe"
    return pubsub


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


def test_the_full_schema_is_written(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    pubsub = subscribed(redis_client, f"{redis_prefix}:events:p1")
    frames = [
        result("f1", "cam1", 1_000, anomaly=True),
        result("f2", "cam1", 3_000, anomaly=True),
        result("f3", "cam2", 2_000, anomaly=False),
    ]
    for frame in frames:
        sink.add(frame)
    sink.flush()

    for frame in frames:
        key = frame_key(redis_prefix, frame)
        assert text(redis_client.hgetall(key)) == frame.fields()
        assert 0 < redis_client.ttl(key) <= TTL_S
    assert stream_of(redis_client, redis_prefix) == [frame.fields() for frame in frames]
    latest = latest_of(redis_client, redis_prefix)
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
    assert text(flagged) == [("cam1:f1", 1_000.0), ("cam1:f2", 3_000.0)]
    events = events_of(pubsub, 3)
    assert [event["frame_id"] for event in events] == ["f1", "f2", "f3"]
    assert events[1] == latest["cam1"]
    pubsub.close()


def test_the_first_result_of_a_frame_wins_everywhere(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    pubsub = subscribed(redis_client, f"{redis_prefix}:events:p1")
    flagged_first = result("f1", "cam1", 1_000, anomaly=True)
    normal_first = result("f2", "cam2", 2_000, anomaly=False)
    # After a model hot swap, Kafka redelivers both and v2 reverses both verdicts: once within
    # the same flush, once in a later one.
    rescored = [
        result("f1", "cam1", 1_000, anomaly=False, model_version="v2"),
        result("f2", "cam2", 2_000, anomaly=True, model_version="v2"),
    ]
    for frame in [flagged_first, normal_first, rescored[0]]:
        sink.add(frame)
    sink.flush()
    redis_client.expire(frame_key(redis_prefix, flagged_first), 60)
    for frame in rescored:
        sink.add(frame)
    sink.flush()

    for frame in [flagged_first, normal_first]:
        assert text(redis_client.hgetall(frame_key(redis_prefix, frame))) == frame.fields()
    assert stream_of(redis_client, redis_prefix) == [flagged_first.fields(), normal_first.fields()]
    latest = latest_of(redis_client, redis_prefix)
    assert (latest["cam1"]["model_version"], latest["cam1"]["is_anomaly"]) == ("v1", True)
    assert (latest["cam2"]["model_version"], latest["cam2"]["is_anomaly"]) == ("v1", False)
    assert text(redis_client.zrange(f"{redis_prefix}:flagged:p1", 0, -1)) == ["cam1:f1"]
    events = events_of(pubsub, 3, timeout_s=1.0)
    assert [(event["frame_id"], event["model_version"]) for event in events] == [
        ("f1", "v1"),
        ("f2", "v1"),
    ]
    # The hash is the record that keeps redeliveries out, so a redelivery restarts its expiry.
    assert redis_client.ttl(frame_key(redis_prefix, flagged_first)) > 60
    pubsub.close()


@pytest.mark.parametrize(
    "frames",
    [
        [
            result("000123", "cam1", 1_000, anomaly=True),
            result("000123", "cam2", 2_000, anomaly=True),
        ],
        [
            result("cam1:000123", "cam1", 1_000, anomaly=True, line="caps"),
            result("cam1:000123", "cam1", 1_000, anomaly=True, line="bolts"),
        ],
    ],
    ids=["two cameras", "two product lines"],
)
def test_frames_numbered_alike_are_two_frames(
    frames: list[FrameResult], sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    lines = {frame.meta.product_line for frame in frames}
    pubsub = subscribed(redis_client, *(f"{redis_prefix}:events:{line}" for line in lines))
    for frame in frames:
        sink.add(frame)
    sink.flush()

    for frame in frames:
        meta = frame.meta
        assert text(redis_client.hgetall(frame_key(redis_prefix, frame))) == frame.fields()
        stream = stream_of(redis_client, redis_prefix, meta.product_line)
        assert [f for f in stream if f["camera_id"] == meta.camera_id] == [frame.fields()]
        member = f"{meta.camera_id}:{meta.frame_id}"
        assert redis_client.zscore(f"{redis_prefix}:flagged:{meta.product_line}", member)
        latest = latest_of(redis_client, redis_prefix, meta.product_line)[meta.camera_id]
        assert latest == json.loads(result_json(frame))
    total = sum(redis_client.xlen(f"{redis_prefix}:scores:{line}") for line in lines)
    assert total == 2
    events = events_of(pubsub, 3, timeout_s=1.0)
    assert sorted((e["product_line"], e["camera_id"]) for e in events) == sorted(
        (f.meta.product_line, f.meta.camera_id) for f in frames
    )
    pubsub.close()


def test_latest_keeps_the_newest_frame_of_each_camera(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    sink.add(result("new", "cam1", 5_000, anomaly=False))
    sink.flush()
    sink.add(result("old", "cam1", 4_000, anomaly=False))  # arrives late, e.g. other partition
    sink.flush()

    assert latest_of(redis_client, redis_prefix)["cam1"]["frame_id"] == "new"
    assert redis_client.xlen(f"{redis_prefix}:scores:p1") == 2


def test_flagged_is_trimmed_to_the_newest(
    sink: RedisScoreSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    for index, captured_at in enumerate([3_000, 1_000, 2_000, 4_000]):
        sink.add(result(f"f{index}", "cam1", captured_at, anomaly=True))
    sink.flush()

    flagged = redis_client.zrange(f"{redis_prefix}:flagged:p1", 0, -1, withscores=True)
    assert text(flagged) == [("cam1:f0", 3_000.0), ("cam1:f3", 4_000.0)]


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


def test_a_flush_retried_after_a_broken_connection_writes_nothing_twice(
    sink: RedisScoreSink,
    redis_client: redis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execute = redis.client.Pipeline.execute
    broken: list[bool] = []

    def break_after_two_frames(pipe: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        if broken:
            return execute(pipe, raise_on_error)
        broken.append(True)
        del pipe.command_stack[2:]  # the first two scripts reach Redis and run ...
        execute(pipe, raise_on_error)
        raise redis.ConnectionError("connection reset by peer")  # ... their replies are lost

    monkeypatch.setattr(redis.client.Pipeline, "execute", break_after_two_frames)
    pubsub = subscribed(redis_client, f"{redis_prefix}:events:p1")
    frames = [result(f"f{index}", "cam1", index * 1_000, anomaly=True) for index in range(4)]
    for frame in frames:
        sink.add(frame)
    sink.flush()

    assert broken == [True]
    assert stream_of(redis_client, redis_prefix) == [frame.fields() for frame in frames]
    flagged = text(redis_client.zrange(f"{redis_prefix}:flagged:p1", 0, -1))
    assert flagged == ["cam1:f2", "cam1:f3"]  # the newest flagged_maxlen
    events = events_of(pubsub, 5, timeout_s=1.0)
    assert [event["frame_id"] for event in events] == ["f0", "f1", "f2", "f3"]
    pubsub.close()


def test_unreachable_redis_is_a_sink_error() -> None:
    sink = RedisScoreSink("redis://127.0.0.1:1/0", attempts=2, socket_timeout_s=0.5)
    with pytest.raises(SinkError, match="PING failed"):
        sink.setup()
    sink.add(result("f1", "cam1", 1_000, anomaly=False))
    with pytest.raises(SinkError, match="after 2 attempts"):
        sink.flush()
