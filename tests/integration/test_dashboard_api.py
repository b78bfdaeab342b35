"""The dashboard's JSON API against the real Redis and MinIO of the local stack, over data the
worker's own sinks wrote (so the contract is the worker's, not a copy of it)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from urllib.parse import quote

import cv2
import numpy as np
import pytest
import redis
from minio import Minio
from stack_endpoints import StackEndpoints
from starlette.testclient import TestClient

from worker.dashboard.app import create_app
from worker.dashboard.queries import Queries
from worker.dashboard.settings import DashboardSettings
from worker.dashboard.sources import open_sources
from worker.frames import FrameMeta, FrameResult
from worker.heartbeat import Heartbeat, LineModels, ModelVersion
from worker.heartbeat.redis_store import RedisHeartbeatStore
from worker.modelstore.layout import VersionRef, encode_pointer
from worker.s3_client import s3_client
from worker.settings import Settings
from worker.sinks.redis_scores import RedisScoreSink
from worker.sinks.s3_heatmaps import S3HeatmapSink

pytestmark = pytest.mark.integration

LINE = "caps"
CAMERAS = ("cam-1", "cam-2")
VERSION = "v7"
DIGEST = "ef" * 32


def heatmap_png(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (360, 480, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".png", image)[1].tobytes())


def dashboard_settings(
    stack: StackEndpoints, redis_prefix: str, heatmap_bucket: str, model_bucket: str, **s3: str
) -> Settings:
    return Settings(
        scores="redis://",
        heatmaps=f"s3://{heatmap_bucket}",
        models={"url": f"s3://{model_bucket}"},
        redis={"url": stack.redis_url, "prefix": redis_prefix},
        s3={
            "endpoint": stack.s3_endpoint,
            "access_key": stack.s3_access_key,
            "secret_key": stack.s3_secret_key,
            **s3,
        },
        _env_file=None,  # type: ignore[call-arg]
    )


def write_frames(settings: Settings, start: int, count: int, now_ms: int) -> list[FrameResult]:
    """``count`` frames alternating between the cameras, every third flagged with a heatmap."""
    scores = RedisScoreSink(settings.redis.url.get_secret_value(), settings.redis.prefix)
    heatmaps = S3HeatmapSink(s3_client(settings.s3), settings.heatmaps.removeprefix("s3://"))
    results = []
    for index in range(start, start + count):
        meta = FrameMeta(f"f:{index:05d}", LINE, CAMERAS[index % 2], now_ms - (count - index) * 10)
        flagged = index % 3 == 0
        uri = heatmaps.add(meta, heatmap_png(index)) if flagged else ""
        result = FrameResult(
            meta,
            0.9 if flagged else 0.1,
            1.2,
            0.6,
            flagged,
            VERSION,
            meta.captured_at_ms + 5,
            uri,
            "w-1",
        )
        results.append(result)
        scores.add(result)
    heatmaps.flush()
    scores.flush()
    scores.close()
    heatmaps.close()
    return results


@pytest.fixture
def settings(
    stack: StackEndpoints,
    redis_prefix: str,
    heatmap_bucket: str,
    s3_bucket: str,
    minio_client: Minio,
) -> Settings:
    pointer = encode_pointer(VersionRef(VERSION, DIGEST), "12" * 32)
    minio_client.put_object(s3_bucket, f"{LINE}/current.json", io.BytesIO(pointer), len(pointer))
    return dashboard_settings(stack, redis_prefix, heatmap_bucket, s3_bucket)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    queries = Queries(open_sources(settings), DashboardSettings())
    with TestClient(create_app(queries)) as client:
        yield client


def test_overview_and_line_from_redis_and_minio(
    settings: Settings, client: TestClient, redis_client: redis.Redis[bytes]
) -> None:
    now_ms = int(time.time() * 1000)
    results = write_frames(settings, 0, 60, now_ms)

    overview = client.get("/api/overview").json()
    [line] = overview["lines"]
    assert line["product_line"] == LINE and line["current_version"] == VERSION
    cameras = {c["camera_id"]: c for c in line["cameras"]}
    assert set(cameras) == set(CAMERAS)
    assert cameras["cam-2"]["latest"]["frame_id"] == "f:00059"
    assert cameras["cam-1"]["window_frames"] == 30
    assert cameras["cam-1"]["flag_rate"] == pytest.approx(10 / 30)
    assert not cameras["cam-1"]["stale"]

    view = client.get(f"/api/lines/{LINE}").json()
    flagged = [r.meta.frame_id for r in reversed(results) if r.is_anomaly]
    assert [f["frame_id"] for f in view["flagged"]] == flagged
    assert [s["frame_id"] for s in view["scores"]] == [r.meta.frame_id for r in results]
    newest = view["flagged"][0]
    thumb = client.get(newest["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(thumb.content, np.uint8), 1).shape[:2] == (180, 240)
    assert client.get(newest["heatmap_url"]).content == heatmap_png(57)
    # The browser never sees where the heatmaps are stored, or how to reach them.
    assert settings.s3.endpoint not in json.dumps(view)

    frame = client.get(f"/api/frames/{LINE}/cam-2/{quote('f:00057', safe='')}").json()
    stored = redis_client.hgetall(f"{settings.redis.prefix}:frame:{LINE}:cam-2:f:00057")
    assert {k.decode(): v.decode() for k, v in stored.items()}["model_version"] == VERSION
    assert frame["model_version"] == VERSION and frame["score"] == pytest.approx(0.9)


def test_the_live_tail_returns_new_stream_entries_only(settings: Settings) -> None:
    sources = open_sources(settings)
    now_ms = int(time.time() * 1000)
    write_frames(settings, 0, 5, now_ms)
    start = sources.scores.tail(LINE, None, wait_s=0.1)
    assert start.scores == []

    write_frames(settings, 5, 3, now_ms + 1000)
    tail = sources.scores.tail(LINE, start.cursor, wait_s=2)
    assert [s.frame_id for s in tail.scores] == ["f:00005", "f:00006", "f:00007"]
    sources.close()


def test_workers_from_redis_heartbeats(settings: Settings, client: TestClient) -> None:
    store = RedisHeartbeatStore(settings.redis.url.get_secret_value(), settings.redis.prefix)
    now_ms = int(time.time() * 1000)
    live = LineModels(live=ModelVersion(version=VERSION, digest=DIGEST))
    store.write(Heartbeat(worker_id="w-1", host="h", pid=1, started_at_ms=now_ms,
                          last_seen_ms=now_ms, interval_s=5, ttl_s=15, frames_scored=60,
                          frames_dead_lettered=2, models={LINE: live}))  # fmt: skip
    store.close()

    workers = client.get("/api/workers").json()
    assert [w["worker_id"] for w in workers["workers"]] == ["w-1"]
    assert workers["workers"][0]["models"][LINE]["live"]["version"] == VERSION
    assert workers["frames_dead_lettered"] == 2


def test_storage_unreachable_is_reported_while_scores_keep_working(
    stack: StackEndpoints, redis_prefix: str, heatmap_bucket: str, s3_bucket: str
) -> None:
    settings = dashboard_settings(stack, redis_prefix, heatmap_bucket, s3_bucket)
    write_frames(settings, 0, 3, int(time.time() * 1000))
    closed = dashboard_settings(
        stack,
        redis_prefix,
        heatmap_bucket,
        s3_bucket,
        endpoint="http://127.0.0.1:9",
        connect_timeout_s="0.5",
    )
    queries = Queries(open_sources(closed), DashboardSettings())
    with TestClient(create_app(queries)) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        components = health.json()["components"]
        assert components["scores"]["ok"] and not components["heatmaps"]["ok"]
        view = client.get(f"/api/lines/{LINE}").json()
        assert [f["frame_id"] for f in view["flagged"]] == ["f:00000"]
        image = client.get(view["flagged"][0]["thumbnail_url"])
        assert image.status_code == 503 and image.json()["component"] == "heatmaps"
