"""Helpers for end-to-end worker tests: small artifacts, synthetic frames, a worker to run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from minio import Minio
from stack_endpoints import StackEndpoints

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.calibration import calibrate
from rdcore.data.images import encode_png
from rdcore.data.preprocess import Preprocess
from rdcore.data.synthetic import defective_image, good_image
from worker.cli.camera_sim import EncodedFrame, send_frames
from worker.modelstore.publish import Published, publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.modelstore.s3 import S3ModelFiles
from worker.service import run_worker
from worker.settings import Settings

IMAGE_SIZE = 64


def synthetic_frames(count: int, seed: int) -> list[EncodedFrame]:
    """Alternating good and defective parts, as PNG payloads named 0000, 0001, ..."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        image = good_image(rng, IMAGE_SIZE) if index % 2 else defective_image(rng, IMAGE_SIZE)[0]
        frames.append(EncodedFrame(f"{index:04d}", encode_png(image), "image/png"))
    return frames


def make_artifact(directory: Path, product_line: str, version: str, seed: int) -> Path:
    """A random-teacher resnet18 whose threshold sits at the median of its scores on synthetic
    frames, so that about half of the frames the tests send are flagged."""
    torch.manual_seed(seed)
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=IMAGE_SIZE), "random")
    model.eval()
    preprocess = Preprocess.from_config(model.config)
    rng = np.random.default_rng(seed)
    images = [good_image(rng, IMAGE_SIZE) for _ in range(6)]
    images += [defective_image(rng, IMAGE_SIZE)[0] for _ in range(6)]
    with torch.inference_mode():
        scores = model(preprocess.batch(images)).score.numpy()
    save_artifact(
        model,
        directory,
        product_line=product_line,
        model_version=version,
        calibration=calibrate(scores, quantile=0.5),
        training={"source": "integration-test"},
    )
    return directory


def read_json(minio: Minio, bucket: str, key: str) -> Any:
    response = minio.get_object(bucket, key)
    try:
        return json.loads(response.read())
    finally:
        response.close()
        response.release_conn()


def s3_registry(minio: Minio, bucket: str) -> ModelRegistry:
    return ModelRegistry(S3ModelFiles(minio, bucket), by="tests@integration")


def publish(
    minio: Minio, bucket: str, artifact: Path, product_line: str, *, promote: bool = True
) -> Published:
    return publish_artifact(s3_registry(minio, bucket), artifact, product_line, promote=promote)


def send(
    stack: StackEndpoints,
    topic: str,
    frames: list[EncodedFrame],
    product_line: str,
    camera_id: str = "cam-01",
    prefix: str = "",
) -> int:
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    try:
        return send_frames(
            producer,
            topic,
            iter(frames),
            product_line=product_line,
            camera_id=camera_id,
            rate=0,
            frame_prefix=prefix,
        )
    finally:
        producer.close()


def worker_settings(
    stack: StackEndpoints,
    *,
    topic: str,
    group: str,
    redis_prefix: str,
    model_bucket: str,
    heatmap_bucket: str,
    cache_dir: Path,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "source": f"kafka://{topic}",
        "dead_letters": f"kafka://{topic}.dlq",
        "models": {"url": f"s3://{model_bucket}", "cache_dir": cache_dir, "poll_s": 1},
        "scores": "redis://",
        "heatmaps": f"s3://{heatmap_bucket}",
        "kafka": {"bootstrap_servers": stack.kafka_bootstrap, "group_id": group},
        "redis": {"url": stack.redis_url, "prefix": redis_prefix},
        "s3": {
            "endpoint": stack.s3_endpoint,
            "access_key": stack.s3_access_key,
            "secret_key": stack.s3_secret_key,
        },
        "metrics_port": 0,
        "health_port": 0,
        "worker_id": f"test-{group[-6:]}",
        "log_level": "WARNING",
        "shutdown_grace_s": 20,
        "batching": {"max_size": 16, "max_wait_ms": 20, "max_queue": 128},
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as RDQC_* variables, to start `rdqc worker` as a process."""
    env: dict[str, str] = {}

    def flatten(prefix: str, data: dict[str, Any]) -> None:
        for key, value in data.items():
            name = f"{prefix}{key.upper()}"
            if isinstance(value, dict):
                flatten(f"{name}__", value)
            elif value is not None:
                env[name] = str(value)

    data = settings.model_dump(mode="json")
    data["redis"]["url"] = settings.redis.url.get_secret_value()
    for secret in ("access_key", "secret_key"):
        value = getattr(settings.s3, secret)
        data["s3"][secret] = value.get_secret_value() if value else None
    flatten("RDQC_", data)
    return env


@contextmanager
def running_worker(settings: Settings) -> Iterator[threading.Thread]:
    """The worker in a thread of this process; stopped (and drained) on exit."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_worker(settings, stop)
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=target, name="worker-under-test", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the worker did not stop within 60 s"
    assert not errors, f"the worker failed: {errors[0]!r}"


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.25)


def end_offsets(stack: StackEndpoints, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def committed_offsets(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    offsets = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def commits_reach_end(
    stack: StackEndpoints, admin: KafkaAdminClient, group: str, topic: str
) -> Callable[[], bool]:
    ends = {p: end for p, end in end_offsets(stack, topic).items() if end > 0}

    def reached() -> bool:
        committed = committed_offsets(admin, group, topic)
        return all(committed.get(p, -1) == end for p, end in ends.items())

    return reached
