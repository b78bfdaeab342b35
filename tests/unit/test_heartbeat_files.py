"""Heartbeats in the embedded mode: one file per worker beside the scores, expiring by its ttl."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from worker.heartbeat import Heartbeat, LineModels, ModelVersion, live_workers
from worker.heartbeat.file_store import FileHeartbeatStore, heartbeat_folder
from worker.settings import Settings

pytestmark = pytest.mark.unit

NOW_S = 1_795_000_000.0
NOW_MS = int(NOW_S * 1000)


def heartbeat(worker_id: str, last_seen_ms: int = NOW_MS, **fields: Any) -> Heartbeat:
    values: dict[str, Any] = {
        "worker_id": worker_id,
        "host": "host-1",
        "pid": 42,
        "started_at_ms": NOW_MS - 60_000,
        "last_seen_ms": last_seen_ms,
        "interval_s": 5.0,
        "ttl_s": 15.0,
        "frames_scored": 10,
        "frames_dead_lettered": 1,
        "models": {"caps": LineModels(live=ModelVersion(version="v1", digest="ab" * 32))},
    }
    return Heartbeat(**(values | fields))


class Clock:
    def __init__(self) -> None:
        self.now = NOW_S

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> FileHeartbeatStore:
    return FileHeartbeatStore(tmp_path / "workers", clock=clock)


def test_the_folder_is_beside_the_scores_file() -> None:
    assert heartbeat_folder("./out/scores.jsonl") == Path("out/workers")


def test_a_written_heartbeat_reads_back_with_the_contract_fields(
    store: FileHeartbeatStore, tmp_path: Path
) -> None:
    written = heartbeat("w-1")
    store.write(written)

    assert store.live() == [written]
    on_disk = json.loads((tmp_path / "workers" / "w-1.json").read_text())
    assert on_disk == {
        "worker_id": "w-1",
        "host": "host-1",
        "pid": 42,
        "started_at": NOW_MS - 60_000,
        "last_seen": NOW_MS,
        "interval_s": 5.0,
        "ttl_s": 15.0,
        "frames_scored": 10,
        "frames_dead_lettered": 1,
        "models": {"caps": {"live": {"version": "v1", "digest": "ab" * 32}, "shadow": None}},
    }
    assert [p.name for p in (tmp_path / "workers").iterdir()] == ["w-1.json"]  # no temp file


def test_a_rewrite_replaces_the_workers_record(store: FileHeartbeatStore) -> None:
    store.write(heartbeat("w-1", frames_scored=1))
    store.write(heartbeat("w-1", frames_scored=2))

    assert [h.frames_scored for h in store.live()] == [2]


def test_a_record_older_than_its_ttl_is_gone_for_readers(
    store: FileHeartbeatStore, clock: Clock
) -> None:
    store.write(heartbeat("w-1"))
    clock.now = NOW_S + 15.0
    assert [h.worker_id for h in store.live()] == ["w-1"]  # exactly the ttl: still alive

    clock.now = NOW_S + 15.001
    assert store.live() == []


def test_a_write_deletes_the_files_of_workers_gone_longer_than_their_ttl(
    store: FileHeartbeatStore, clock: Clock
) -> None:
    store.write(heartbeat("killed"))
    clock.now = NOW_S + 20
    store.write(heartbeat("alive", last_seen_ms=NOW_MS + 20_000))

    assert not store.path("killed").exists()
    assert [h.worker_id for h in store.live()] == ["alive"]


def test_removing_deletes_only_that_workers_file(store: FileHeartbeatStore) -> None:
    store.write(heartbeat("w-1"))
    store.write(heartbeat("w-2"))

    store.remove("w-1")
    store.remove("never-written")

    assert [h.worker_id for h in store.live()] == ["w-2"]


def test_a_worker_id_cannot_place_its_file_outside_the_folder(
    store: FileHeartbeatStore, tmp_path: Path
) -> None:
    store.write(heartbeat("../../escape"))

    [path] = (tmp_path / "workers").iterdir()
    assert path.name.startswith("_.._.._escape-")
    assert [h.worker_id for h in store.live()] == ["../../escape"]


def test_a_file_that_is_no_heartbeat_is_skipped_and_named(
    store: FileHeartbeatStore, tmp_path: Path
) -> None:
    store.write(heartbeat("w-1"))
    (tmp_path / "workers" / "stray.json").write_text('{"not": "a heartbeat"}')

    with capture_logs() as logs:
        live = store.live()

    assert [h.worker_id for h in live] == ["w-1"]
    assert [entry["event"] for entry in logs] == ["heartbeat skipped"]
    assert "stray.json" in logs[0]["path"]


def test_live_workers_reads_the_folder_beside_the_configured_scores_file(tmp_path: Path) -> None:
    store = FileHeartbeatStore(tmp_path / "workers")
    for worker_id in ("w-b", "w-a"):
        store.write(heartbeat(worker_id, last_seen_ms=int(time.time() * 1000)))

    listed = live_workers(Settings(scores=f"file://{tmp_path / 'scores.jsonl'}"))
    assert [h.worker_id for h in listed] == ["w-a", "w-b"]
    assert live_workers(Settings(scores=f"file://{tmp_path / 'elsewhere' / 's.jsonl'}")) == []
