"""A model change reaches every running worker without a restart: two workers in one consumer
group serve a product line from MinIO while a recalibration is published, another version is
promoted and then rolled back; an overwrite of a published version is refused meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from conftest import TOPIC_PARTITIONS, unique_name
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from minio import Minio
from stack_endpoints import StackEndpoints
from worker_harness import (
    make_artifact,
    publish,
    running_worker,
    s3_registry,
    synthetic_frames,
    wait_for,
    worker_settings,
)

from rdcore.data.synthetic import write_image_folder
from rdcore.evaluation.recalibrate import recalibrate_as_new_version
from worker.cli.camera_sim import send_frames
from worker.modelstore.registry import VersionExists

pytestmark = pytest.mark.integration

LINE = "line-l"
POLL_S = 1
WORKERS = ("rollout-a", "rollout-b")
# A change must show in both workers' scores within one poll interval plus the time a worker
# takes to download, load and warm up the version (a second or two on a busy 2-core machine).
REACH_S = POLL_S + 10


def one_camera_per_partition() -> list[str]:
    """Camera ids (the record keys) that Kafka's default partitioner spreads over every
    partition, so each worker of the group gets frames whatever partitions it holds."""
    cameras: dict[int, str] = {}
    for index in range(1000):
        camera = f"cam-{index:03d}"
        cameras.setdefault((murmur2(camera.encode()) & 0x7FFFFFFF) % TOPIC_PARTITIONS, camera)
        if len(cameras) == TOPIC_PARTITIONS:
            return [cameras[p] for p in range(TOPIC_PARTITIONS)]
    raise AssertionError("no camera ids cover every partition")


class Probe:
    """Rounds of one frame per partition; each round returns the stream entries it produced."""

    def __init__(self, producer: KafkaProducer, topic: str, client: redis.Redis[bytes], key: str):
        self._producer, self._topic, self._client, self._key = producer, topic, client, key
        self._cameras = one_camera_per_partition()
        self._frame = synthetic_frames(1, seed=3)
        self._rounds = 0

    def round(self) -> list[dict[str, str]]:
        self._rounds += 1
        prefix = f"r{self._rounds:04d}-"
        for camera in self._cameras:
            send_frames(
                self._producer,
                self._topic,
                iter(self._frame),
                product_line=LINE,
                camera_id=camera,
                rate=0,
                frame_prefix=prefix,
            )
        entries: list[dict[str, str]] = []

        def scored() -> bool:
            entries[:] = [e for e in self._entries() if e["frame_id"].startswith(prefix)]
            return len(entries) == len(self._cameras)

        wait_for(scored, 120, f"probe round {self._rounds} to be scored")
        return entries

    def until_both_workers_serve(self, version: str, since: float) -> tuple[float, list[dict]]:
        """Rounds until a round is scored by both workers, all with ``version``; returns the
        seconds from ``since`` and that round's entries."""
        while True:
            entries = self.round()
            if {e["worker_id"] for e in entries} == set(WORKERS) and {
                e["model_version"] for e in entries
            } == {version}:
                return time.monotonic() - since, entries
            assert time.monotonic() - since < 120, f"{version} never reached both workers"

    def _entries(self) -> Iterator[dict[str, str]]:
        for _, fields in self._client.xrange(self._key):
            yield {k.decode(): v.decode() for k, v in fields.items()}


def test_a_recalibration_a_promotion_and_a_rollback_each_reach_both_running_workers(
    stack: StackEndpoints,
    kafka_topic: str,
    redis_client: redis.Redis[bytes],
    redis_prefix: str,
    minio_client: Minio,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> None:
    registry = s3_registry(minio_client, s3_bucket)
    v1 = make_artifact(tmp_path / "v1", LINE, "v1", seed=0)
    publish(minio_client, s3_bucket, v1, LINE)
    group = unique_name()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    probe = Probe(producer, kafka_topic, redis_client, f"{redis_prefix}:scores:{LINE}")
    reached: dict[str, float] = {}

    with ExitStack() as workers:
        workers.callback(producer.close)
        for worker_id in WORKERS:
            settings = worker_settings(
                stack,
                topic=kafka_topic,
                group=group,
                redis_prefix=redis_prefix,
                model_bucket=s3_bucket,
                heatmap_bucket=heatmap_bucket,
                cache_dir=tmp_path / f"cache-{worker_id}",
                worker_id=worker_id,
                heatmaps_for="none",
            )
            assert settings.models.poll_s == POLL_S
            workers.enter_context(running_worker(settings))
        probe.until_both_workers_serve("v1", time.monotonic())

        # A recalibration of v1, published mid-stream as a new version with a new threshold.
        good = tmp_path / "good"
        write_image_folder(good, 8, seed=4, size=64)
        recalibrated, manifest = recalibrate_as_new_version(
            v1, good, tmp_path / "v1-cal", new_version="v1-cal", quantile=0.9, device="cpu"
        )
        assert manifest.calibration is not None
        threshold = manifest.calibration.threshold
        changed = time.monotonic()
        publish(minio_client, s3_bucket, recalibrated, LINE)
        reached["recalibration"], entries = probe.until_both_workers_serve("v1-cal", changed)
        for entry in entries:
            assert float(entry["threshold"]) == pytest.approx(threshold, abs=1e-6)
            assert entry["is_anomaly"] == str(int(float(entry["raw_score"]) >= threshold))

        # Another version, uploaded first and promoted afterwards.
        publish(
            minio_client,
            s3_bucket,
            make_artifact(tmp_path / "v2", LINE, "v2", 1),
            LINE,
            promote=False,
        )
        changed = time.monotonic()
        registry.promote(LINE, "v2")
        reached["promotion"], _ = probe.until_both_workers_serve("v2", changed)

        changed = time.monotonic()
        assert registry.rollback(LINE).version == "v1-cal"
        reached["rollback"], _ = probe.until_both_workers_serve("v1-cal", changed)

        # Overwriting a published version is refused, and the workers keep serving.
        with pytest.raises(VersionExists):
            publish(minio_client, s3_bucket, make_artifact(tmp_path / "v2b", LINE, "v2", 5), LINE)
        assert {e["model_version"] for e in probe.round()} == {"v1-cal"}

    print(f"seconds until both workers served the change: {reached}")
    for change, seconds in reached.items():
        assert seconds < REACH_S, f"the {change} took {seconds:.1f} s to reach both workers"
