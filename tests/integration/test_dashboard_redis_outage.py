"""Redis stopped and started again under a running dashboard: the API reports the outage (the
pages' banner) and recovers by itself, with no restart. The Redis here is the test's own, on a
free port: the shared stack's is never stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from worker.dashboard.app import create_app
from worker.dashboard.queries import Queries
from worker.dashboard.settings import DashboardSettings
from worker.dashboard.sources import open_sources
from worker.frames import FrameMeta, FrameResult
from worker.settings import Settings
from worker.sinks.redis_scores import RedisScoreSink

pytestmark = pytest.mark.integration

LINE = "caps"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnRedis:
    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._folder)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make stack-up installs it)")
    server = OwnRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def write_frame(url: str, frame_id: str) -> None:
    sink = RedisScoreSink(url, "rdqc")
    now_ms = int(time.time() * 1000)
    meta = FrameMeta(frame_id, LINE, "cam-1", now_ms)
    sink.add(FrameResult(meta, 0.2, 0.1, 0.5, False, "v1", now_ms, "", "w-1"))
    sink.flush()
    sink.close()


def test_redis_outage_shows_and_clears_without_a_restart(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    settings = Settings(
        scores="redis://",
        redis={"url": own_redis.url, "connect_timeout_s": 0.5, "socket_timeout_s": 1},
        heatmaps=f"dir://{tmp_path / 'heatmaps'}",
        models={"url": f"dir://{tmp_path / 'models'}"},
        _env_file=None,  # type: ignore[call-arg]
    )
    (tmp_path / "models" / LINE).mkdir(parents=True)
    write_frame(own_redis.url, "before")
    queries = Queries(open_sources(settings), DashboardSettings())
    with TestClient(create_app(queries)) as client:
        assert client.get("/api/health").json()["ok"] is True
        assert client.get(f"/api/lines/{LINE}").json()["scores"][0]["frame_id"] == "before"

        own_redis.stop()
        health = client.get("/api/health")
        assert health.status_code == 503
        scores = health.json()["components"]["scores"]
        assert scores["ok"] is False and "Redis unreachable" in scores["error"]
        line = client.get(f"/api/lines/{LINE}")
        assert line.status_code == 503 and line.json()["component"] == "scores"
        page = client.get(f"/lines/{LINE}")
        assert page.status_code == 503 and "Redis unreachable" in page.text
        assert 'id="banner"' in page.text

        own_redis.start()  # empty: no persistence
        write_frame(own_redis.url, "after")
        assert client.get("/api/health").json()["ok"] is True
        assert client.get(f"/api/lines/{LINE}").json()["scores"][0]["frame_id"] == "after"
