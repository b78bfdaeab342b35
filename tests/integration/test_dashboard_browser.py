"""The dashboard in a real browser while a worker scores frames from the camera simulator.

Headless Chromium from Debian's packages (``make browser``), driven by Playwright's Python
package at /usr/bin/chromium. The screenshot is kept under the pytest basetemp; with
RDQC_UPDATE_SCREENSHOT=1 it also replaces docs/dashboard.png, the README's picture.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from minio import Minio
from stack_endpoints import StackEndpoints
from worker_harness import (
    make_artifact,
    publish,
    running_worker,
    send,
    synthetic_frames,
    wait_for,
    worker_settings,
)

from worker.settings import Settings

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
LINE = "caps"
CAMERA = "cam-07"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dashboard_url(settings: Settings) -> Iterator[str]:
    """The dashboard served by uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    from worker.dashboard.app import create_app
    from worker.dashboard.queries import Queries
    from worker.dashboard.settings import DashboardSettings
    from worker.dashboard.sources import open_sources

    app = create_app(Queries(open_sources(settings), DashboardSettings()))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard-under-test", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the dashboard to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def settings(
    stack: StackEndpoints,
    kafka_topic: str,
    redis_prefix: str,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> Settings:
    return worker_settings(
        stack,
        topic=kafka_topic,
        group=f"dash-{kafka_topic[-12:]}",
        redis_prefix=redis_prefix,
        model_bucket=s3_bucket,
        heatmap_bucket=heatmap_bucket,
        cache_dir=tmp_path / "cache",
    )


def flagged_count(client: redis.Redis[bytes], prefix: str) -> int:
    return int(client.zcard(f"{prefix}:flagged:{LINE}"))


def test_the_line_view_follows_the_worker_live(
    stack: StackEndpoints,
    settings: Settings,
    dashboard_url: str,
    kafka_topic: str,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    publish(minio_client, s3_bucket, make_artifact(tmp_path / "v1", LINE, "v1", seed=3), LINE)
    with running_worker(settings), sync_playwright() as playwright:
        send(stack, kafka_topic, synthetic_frames(12, seed=1), LINE, CAMERA, prefix="a-")
        wait_for(lambda: flagged_count(redis_client, redis_prefix) > 0, 180, "a flagged frame")

        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{dashboard_url}/lines/{LINE}")
        page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        known = page.eval_on_selector_all("#gallery li", "items => items.map(i => i.dataset.key)")
        assert known, "the gallery starts with the flagged frames so far"

        send(stack, kafka_topic, synthetic_frames(12, seed=2), LINE, CAMERA, prefix="b-")
        new_item = page.wait_for_function(
            """known => [...document.querySelectorAll('#gallery li')]
                .find(li => !known.includes(li.dataset.key))""",
            arg=known,
            timeout=TIMEOUT_MS,
        ).as_element()
        assert new_item is not None
        new_key = new_item.get_attribute("data-key") or ""
        assert new_key.startswith(f"{CAMERA}:b-")
        page.wait_for_function(
            "item => { const img = item.querySelector('img');"
            " return img && img.complete && img.naturalWidth > 0; }",
            arg=new_item,
            timeout=TIMEOUT_MS,
        )
        points = int(page.get_attribute("#charts", "data-points") or 0)
        assert points > 0, "the chart took scores from the live stream"
        assert page.locator("canvas.chart").count() == 1
        assert page.evaluate("window.loadedOnce") is True, "no reload happened"
        page.wait_for_timeout(500)
        shot = tmp_path_factory.getbasetemp() / "dashboard-line.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("RDQC_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, SCREENSHOT)

        new_item.query_selector("a").click()  # type: ignore[union-attr]
        page.wait_for_selector("#model-version", timeout=TIMEOUT_MS)
        camera_id, _, frame_id = new_key.partition(":")
        stored = redis_client.hget(
            f"{redis_prefix}:frame:{LINE}:{camera_id}:{frame_id}", "model_version"
        )
        assert stored == b"v1"
        assert page.inner_text("#model-version") == "v1"
        page.wait_for_function(
            "() => { const img = document.getElementById('heatmap');"
            " return img && img.complete && img.naturalWidth > 0; }",
            timeout=TIMEOUT_MS,
        )
        browser.close()
