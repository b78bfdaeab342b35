"""The dashboard over a folder written like ``rdqc demo``'s output (scores.jsonl, heatmaps/ at
the contract keys, workers/ heartbeats, models/ with a pointer and its history; no weights, the
dashboard never loads a model): every view and API route, thumbnails, the live tail of the
scores file, escaping of hostile ids."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from worker.dashboard.app import create_app
from worker.dashboard.jsonl_scores import JsonlScoreReader
from worker.dashboard.queries import Queries
from worker.dashboard.settings import DashboardSettings
from worker.dashboard.sources import open_sources
from worker.frames import FrameMeta
from worker.heartbeat import Heartbeat, LineModels, ModelVersion
from worker.modelstore.history import encode_entry, new_entry
from worker.modelstore.layout import VersionRef, encode_pointer
from worker.settings import Settings
from worker.sinks.object_keys import heatmap_key

pytestmark = pytest.mark.unit

LINE = "bottle-caps"
CAMERA = "cam-01"
VERSION = "demo-v1"
DIGEST = "ab" * 32
NOW_MS = 1_795_000_000_000
HOSTILE_ID = "<script>alert(1)</script>"
HEATMAP_SIZE = (480, 640)  # height, width


def heatmap_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (*HEATMAP_SIZE, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", image)
    assert ok
    return bytes(png.tobytes())


def score_record(root: Path, index: int, *, flagged: bool, frame_id: str = "") -> dict[str, Any]:
    frame_id = frame_id or f"{LINE}-{CAMERA}-frame-{index:04d}"
    captured_at = NOW_MS - (100 - index) * 1000
    heatmap_uri = ""
    if flagged:
        meta = FrameMeta(frame_id, LINE, CAMERA, captured_at)
        path = root / "heatmaps" / heatmap_key(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(heatmap_png(index))
        heatmap_uri = path.resolve().as_uri()
    return {
        "frame_id": frame_id,
        "product_line": LINE,
        "camera_id": CAMERA,
        "score": 0.8 if flagged else 0.2,
        "raw_score": 0.5 if flagged else 0.1,
        "threshold": 0.3,
        "is_anomaly": flagged,
        "model_version": VERSION,
        "captured_at": captured_at,
        "scored_at": captured_at + 40,
        "heatmap_uri": heatmap_uri,
        "worker_id": "demo",
    }


def append_scores(root: Path, records: list[dict[str, Any]]) -> None:
    with (root / "scores.jsonl").open("a") as file:
        for record in records:
            file.write(json.dumps(record, separators=(",", ":")) + "\n")


def write_demo_folder(root: Path) -> None:
    """20 frames of one camera, every fourth flagged, the last one with a hostile id."""
    records = [score_record(root, i, flagged=i % 4 == 0) for i in range(19)]
    records.append(score_record(root, 19, flagged=True, frame_id=HOSTILE_ID))
    append_scores(root, records)
    models = root / "models" / LINE
    (models / "history").mkdir(parents=True)
    target = VersionRef(VERSION, DIGEST)
    (models / "current.json").write_bytes(encode_pointer(target, "cd" * 32))
    name, entry = new_entry("publish", target, None, "ana@build-01")
    (models / "history" / name).write_bytes(encode_entry(entry))
    heartbeat = Heartbeat(
        worker_id="demo",
        host="host-1",
        pid=7,
        started_at_ms=NOW_MS - 60_000,
        last_seen_ms=NOW_MS - 1000,
        interval_s=5.0,
        ttl_s=15.0,
        frames_scored=20,
        frames_dead_lettered=1,
        models={LINE: LineModels(live=ModelVersion(version=VERSION, digest=DIGEST))},
    )
    (root / "workers").mkdir()
    (root / "workers" / "demo.json").write_text(heartbeat.to_json())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_demo_folder(tmp_path)
    return tmp_path


def embedded_settings(folder: Path) -> Settings:
    return Settings(
        scores=f"file://{folder / 'scores.jsonl'}",
        heatmaps=f"dir://{folder / 'heatmaps'}",
        models={"url": f"dir://{folder / 'models'}"},
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def client(folder: Path) -> TestClient:
    queries = Queries(
        open_sources(embedded_settings(folder)),
        DashboardSettings(window_s=120, stale_after_s=30),
        clock=lambda: NOW_MS / 1000,
    )
    return TestClient(create_app(queries))


def test_overview_shows_each_camera_live_score_flag_rate_and_staleness(client: TestClient) -> None:
    overview = client.get("/api/overview").json()

    [line] = overview["lines"]
    assert line["product_line"] == LINE and line["current_version"] == VERSION
    [camera] = line["cameras"]
    assert camera["camera_id"] == CAMERA
    assert camera["latest"]["frame_id"] == HOSTILE_ID  # the newest by captured_at
    # The frames were captured 100..81 s ago: all in the 120 s window, six of them flagged.
    assert camera["window_frames"] == 20
    assert camera["flag_rate"] == pytest.approx(6 / 20)
    assert camera["last_frame_age_s"] == pytest.approx(81)
    assert camera["stale"] is True
    assert "cam-01" in client.get("/").text


def test_line_lists_flagged_frames_newest_first_with_thumbnails(client: TestClient) -> None:
    line = client.get(f"/api/lines/{LINE}").json()

    ids = [frame["frame_id"] for frame in line["flagged"]]
    assert ids[0] == HOSTILE_ID
    assert ids[1:] == [f"{LINE}-{CAMERA}-frame-{i:04d}" for i in (16, 12, 8, 4, 0)]
    assert len(line["scores"]) == 20 and line["threshold_score"] == 0.5
    thumb = client.get(line["flagged"][1]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    height, width = HEATMAP_SIZE
    assert image.shape[1] == 240 and image.shape[0] == round(height * 240 / width)
    full = client.get(line["flagged"][1]["heatmap_url"])
    assert full.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(full.content, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (
        height,
        width,
    )


def test_frame_view_shows_every_field_and_escapes_hostile_ids(client: TestClient) -> None:
    path = f"{LINE}/{CAMERA}/{quote(HOSTILE_ID, safe='')}"
    frame = client.get(f"/api/frames/{path}").json()
    assert frame["model_version"] == VERSION and frame["is_anomaly"] is True

    page = client.get(f"/frames/{path}")
    assert page.status_code == 200
    assert HOSTILE_ID not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert HOSTILE_ID not in client.get(f"/lines/{LINE}").text


def test_models_and_workers_come_from_the_store_and_heartbeats(client: TestClient) -> None:
    models = client.get("/api/models").json()
    [line] = models["lines"]
    assert line["current"]["version"] == VERSION
    assert [entry["action"] for entry in line["history"]] == ["publish"]
    assert "demo-v1" in client.get("/models").text


def test_unknown_frames_and_unsafe_names_are_404(client: TestClient) -> None:
    assert client.get(f"/api/frames/{LINE}/{CAMERA}/nope").status_code == 404
    assert client.get("/api/lines/..%2F..%2Fetc").status_code == 404
    assert (
        client.get(f"/api/heatmaps/{LINE}/{CAMERA}/{LINE}-{CAMERA}-frame-0001").status_code == 404
    )


def test_tail_returns_only_what_was_appended_after_the_cursor(folder: Path) -> None:
    reader = JsonlScoreReader(folder / "scores.jsonl", sleep=lambda _: None)
    start = reader.tail(LINE, None, wait_s=0)
    assert start.scores == []

    append_scores(folder, [score_record(folder, 50, flagged=False)])
    with (folder / "scores.jsonl").open("a") as file:
        file.write('{"frame_id": "torn')  # a line still being written waits for its newline
    tail = reader.tail(LINE, start.cursor, wait_s=1)

    assert [s.frame_id for s in tail.scores] == [f"{LINE}-{CAMERA}-frame-0050"]
    assert reader.tail(LINE, tail.cursor, wait_s=0).scores == []


def test_every_route_only_reads(client: TestClient) -> None:
    app = client.app
    for route in app.routes:  # type: ignore[attr-defined]
        methods = getattr(route, "methods", None)
        assert methods is None or methods <= {"GET", "HEAD"}, route


def test_heartbeat_workers_are_listed_with_dead_letter_counts(
    client: TestClient, folder: Path
) -> None:
    # The heartbeat store judges expiry by the wall clock: the record must be fresh now.
    path = folder / "workers" / "demo.json"
    record = Heartbeat.from_json(path.read_bytes(), str(path))
    fresh = record.model_copy(update={"last_seen_ms": int(time.time() * 1000)})
    path.write_text(fresh.to_json())
    workers = client.get("/api/workers").json()
    assert [w["worker_id"] for w in workers["workers"]] == ["demo"]
    assert workers["frames_dead_lettered"] == 1
