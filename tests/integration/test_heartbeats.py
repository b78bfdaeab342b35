"""Worker heartbeats in the real Redis: two workers of one group listed with the model digest
they score with, a stopped worker's record removed at once, a killed worker's expired by its ttl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from conftest import unique_name
from kafka import KafkaAdminClient
from minio import Minio
from stack_endpoints import StackEndpoints
from typer.testing import CliRunner
from worker_harness import (
    make_artifact,
    publish,
    running_worker,
    send,
    settings_env,
    synthetic_frames,
    wait_for,
    worker_settings,
)

from rdcore.artifacts.artifact import read_manifest
from worker.cli import app
from worker.heartbeat import Heartbeat, live_workers, workers_by_version
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CAMERAS = 16  # keyed by camera, so spread over the topic's 4 partitions


def group_members(admin: KafkaAdminClient, group: str) -> int:
    description = admin.describe_groups([group])[group]
    return len(description["members"]) if description["group_state"] == "Stable" else 0


def listed(settings: Settings) -> dict[str, Heartbeat]:
    return {heartbeat.worker_id: heartbeat for heartbeat in live_workers(settings)}


def test_two_workers_are_listed_with_their_model_and_a_stopped_one_is_removed(
    stack: StackEndpoints,
    kafka_topic: str,
    kafka_admin: KafkaAdminClient,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> None:
    artifact = make_artifact(tmp_path / "a", "line-a", "v1", seed=0)
    digest = read_manifest(artifact).digest()
    publish(minio_client, s3_bucket, artifact, "line-a")
    group = unique_name()

    def settings(worker_id: str) -> Settings:
        return worker_settings(
            stack,
            topic=kafka_topic,
            group=group,
            redis_prefix=redis_prefix,
            model_bucket=s3_bucket,
            heatmap_bucket=heatmap_bucket,
            cache_dir=tmp_path / f"cache-{worker_id}",
            worker_id=worker_id,
            heartbeat={"interval_s": 0.5, "ttl_s": 5},
        )

    first, second = settings("worker-a"), settings("worker-b")
    frames = synthetic_frames(4, seed=3)
    with running_worker(first):
        with running_worker(second):
            wait_for(
                lambda: group_members(kafka_admin, group) == 2, 60, "both workers in the group"
            )
            for camera in range(CAMERAS):
                send(stack, kafka_topic, frames, "line-a", f"cam-{camera}", f"c{camera}-")
            total = CAMERAS * len(frames)

            def all_scored() -> bool:
                workers = listed(first).values()
                return len(workers) == 2 and sum(h.frames_scored for h in workers) == total

            wait_for(all_scored, 180, f"heartbeats counting {total} scored frames")
            workers = listed(first)
            assert sorted(workers) == ["worker-a", "worker-b"]
            for heartbeat in workers.values():
                assert heartbeat.frames_scored > 0
                assert heartbeat.frames_dead_lettered == 0
                assert heartbeat.models["line-a"].live.version == "v1"
                assert heartbeat.models["line-a"].live.digest == digest
                assert heartbeat.models["line-a"].shadow is None
            grouped = workers_by_version(workers.values())
            assert {k: sorted(h.worker_id for h in v) for k, v in grouped.items()} == {
                ("line-a", digest): ["worker-a", "worker-b"]
            }

            # The layout a dashboard reads (docs/contracts.md §2): the index and a SCAN agree.
            keys = {f"{redis_prefix}:worker:worker-a", f"{redis_prefix}:worker:worker-b"}
            scanned = redis_client.scan_iter(match=f"{redis_prefix}:worker:*", count=1000)
            assert {key.decode() for key in scanned} == keys
            index = redis_client.zrange(f"{redis_prefix}:workers", 0, -1)
            assert {member.decode() for member in index} == {"worker-a", "worker-b"}
            for key in keys:
                assert 0 < int(redis_client.pttl(key)) <= 5000
                record = json.loads(redis_client.get(key) or b"{}")
                assert record["models"]["line-a"]["live"] == {"version": "v1", "digest": digest}
            assert 0 < int(redis_client.pttl(f"{redis_prefix}:workers")) <= 5000

            result = CliRunner().invoke(app, ["workers", "--json"], env=settings_env(first))
            assert result.exit_code == 0, result.output
            assert [r["worker_id"] for r in json.loads(result.stdout)] == ["worker-a", "worker-b"]

        # worker-b stopped cleanly: gone at once, long before its ttl.
        assert sorted(listed(first)) == ["worker-a"]
        assert not redis_client.exists(f"{redis_prefix}:worker:worker-b")
        assert redis_client.zrange(f"{redis_prefix}:workers", 0, -1) == [b"worker-a"]
    assert listed(first) == {}
    assert not redis_client.exists(f"{redis_prefix}:workers")


def test_a_killed_workers_heartbeat_expires_after_its_ttl(
    stack: StackEndpoints,
    kafka_topic: str,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> None:
    settings = worker_settings(
        stack,
        topic=kafka_topic,
        group=unique_name(),
        redis_prefix=redis_prefix,
        model_bucket=s3_bucket,
        heatmap_bucket=heatmap_bucket,
        cache_dir=tmp_path / "cache",
        worker_id="doomed",
        heartbeat={"interval_s": 0.5, "ttl_s": 2},
    )
    # This checkout's code, whichever rdqc is installed.
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", "from worker.cli import main; main()", "worker"]
    key = f"{redis_prefix}:worker:doomed"

    process = subprocess.Popen(command, env=env, cwd=REPO)
    try:
        wait_for(lambda: bool(redis_client.exists(key)), 120, "the worker's first heartbeat")
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    killed = time.monotonic()
    assert [h.worker_id for h in live_workers(settings)] == ["doomed"]  # nobody removed it

    wait_for(lambda: not redis_client.exists(key), 10, "the heartbeat to expire")
    assert time.monotonic() - killed <= 3.5  # the ttl of 2 s, plus the test's polling
    assert live_workers(settings) == []
    assert not redis_client.exists(f"{redis_prefix}:workers")  # the index expired with it
