"""How fast the dashboard's overview and a line view with 50 flagged thumbnails load, against the
local stack with a full scores stream (100,000 entries by default).

Writes the entries with the worker's own Redis sink under a fresh key prefix, and 50 heatmaps
(1280x960 PNG, a camera's size) to a fresh bucket for the newest flagged frames; serves the
dashboard with uvicorn on loopback and loads each view over HTTP as a browser would (the page,
then its images six at a time). Cold: the first load (thumbnails made from the PNGs); warm: the
median of the next loads. Everything it wrote is deleted at the end.

Run (stack up): RDQC_STACK_ENV=.stack/stack.env .venv/bin/python tests/benchmarks/bench_dashboard.py
Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx2 as httpx
import numpy as np
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from stack_endpoints import StackEndpoints, env_file_path, make_minio

from worker.dashboard.app import create_app
from worker.dashboard.queries import Queries
from worker.dashboard.settings import DashboardSettings
from worker.dashboard.sources import open_sources
from worker.frames import FrameMeta, FrameResult
from worker.s3_client import s3_client
from worker.settings import Settings
from worker.sinks.object_keys import heatmap_key
from worker.sinks.redis_scores import RedisScoreSink
from worker.sinks.s3_heatmaps import S3HeatmapSink

LINE = "bench"
CAMERAS = ("cam-1", "cam-2", "cam-3", "cam-4")
FLAG_EVERY = 20
GALLERY = 50
BROWSER_CONNECTIONS = 6


def write_scores(settings: Settings, bucket: str, entries: int) -> None:
    url = settings.redis.url.get_secret_value()
    sink = RedisScoreSink(url, settings.redis.prefix, stream_maxlen=entries)
    heatmaps = S3HeatmapSink(s3_client(settings.s3), bucket)
    rng = np.random.default_rng(0)
    png = bytes(cv2.imencode(".png", rng.integers(0, 255, (960, 1280, 3), np.uint8))[1].tobytes())
    now_ms = int(time.time() * 1000)
    first_with_heatmap = entries - GALLERY * FLAG_EVERY
    for index in range(entries):
        meta = FrameMeta(f"f-{index:07d}", LINE, CAMERAS[index % 4], now_ms - (entries - index) * 5)
        flagged = index % FLAG_EVERY == 0
        uri = ""
        if flagged and index >= first_with_heatmap:
            uri = heatmaps.add(meta, png)
        elif flagged:
            uri = f"s3://{bucket}/{heatmap_key(meta)}"  # off the gallery: never fetched
        score = 0.9 if flagged else 0.2
        sink.add(FrameResult(meta, score, score, 0.5, flagged, "v1", meta.captured_at_ms, uri, "b"))
        if index % 2000 == 1999:
            heatmaps.flush()
            sink.flush()
    heatmaps.flush()
    sink.flush()
    sink.close()
    heatmaps.close()


def load_view(client: httpx.Client, page: str, images: Callable[[], list[str]]) -> float:
    started = time.perf_counter()
    client.get(page).raise_for_status()
    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        for answer in pool.map(client.get, images()):
            answer.raise_for_status()
    return time.perf_counter() - started


def measure(base: str, runs: int) -> dict[str, tuple[float, float]]:
    with httpx.Client(base_url=base, timeout=30) as client:
        thumbnails = [
            f["thumbnail_url"] for f in client.get(f"/api/lines/{LINE}").json()["flagged"]
        ]
        assert len(thumbnails) == GALLERY, f"{len(thumbnails)} flagged frames with thumbnails"
        views = {
            "overview (page + /api/overview)": lambda: load_view(
                client, "/", lambda: ["/api/overview"]
            ),
            "line view (page + 50 thumbnails)": lambda: load_view(
                client, f"/lines/{LINE}", lambda: thumbnails
            ),
            "GET /api/lines/{line}": lambda: load_view(client, f"/api/lines/{LINE}", list),
        }
        results = {}
        for name, view in views.items():
            cold = view()
            warm = statistics.median(view() for _ in range(runs))
            results[name] = (cold, warm)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stack = StackEndpoints.from_env_file(env_file_path())
    minio = make_minio(stack)
    prefix = f"rdqc-bench:{uuid.uuid4().hex}"
    bucket = f"rdqc-bench-{uuid.uuid4().hex[:12]}"
    minio.make_bucket(bucket)
    settings = Settings(
        scores="redis://",
        heatmaps=f"s3://{bucket}",
        models={"url": f"s3://{bucket}"},
        redis={"url": stack.redis_url, "prefix": prefix},
        s3={"endpoint": stack.s3_endpoint, "access_key": stack.s3_access_key,
            "secret_key": stack.s3_secret_key},
        _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip
    server = None
    try:
        started = time.perf_counter()
        write_scores(settings, bucket, args.entries)
        print(f"wrote {args.entries} entries in {time.perf_counter() - started:.1f} s")
        app = create_app(Queries(open_sources(settings), DashboardSettings()))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=18931, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        print("| view | cold (s) | warm, median (s) |\n| --- | --- | --- |")
        for name, (cold, warm) in measure("http://127.0.0.1:18931", args.runs).items():
            print(f"| {name} | {cold:.3f} | {warm:.3f} |")
    finally:
        if server is not None:
            server.should_exit = True
        import redis

        client = redis.Redis.from_url(stack.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start : start + 10_000])
        for obj in minio.list_objects(bucket, recursive=True):
            minio.remove_object(bucket, obj.object_name or "")
        minio.remove_bucket(bucket)


if __name__ == "__main__":
    main()
