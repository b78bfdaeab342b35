"""The fault suite: two workers in one group under real faults, while a camera keeps publishing.

During one stream of frames over three product lines, a worker is killed with SIGKILL while it
has frames in flight (three times, then restarted), and Redis, MinIO and the Kafka broker are
each frozen with SIGSTOP for 15-18 s. Afterwards every frame must be in its product line's
stream exactly once, every flagged frame's heatmap must exist, nothing may be dead-lettered,
no worker may have exited on its own, and the group's offsets must reach the end of the topic.

The run's figures are written as JSON to ``$RDQC_FAULT_REPORT`` (default: the test's temp
folder) and printed; docs/reliability.md quotes them. The scenario runs once, a few minutes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from conftest import unique_name
from fault_harness import (
    Camera,
    SentFrame,
    StreamEntry,
    WorkerProcess,
    frozen,
    percentile,
    stream_entries,
    write_report,
)
from kafka import KafkaAdminClient, KafkaConsumer
from minio import Minio
from stack_endpoints import StackEndpoints
from worker_harness import (
    commits_reach_end,
    make_artifact,
    publish,
    settings_env,
    synthetic_frames,
    wait_for,
    worker_settings,
)

pytestmark = pytest.mark.slow

LINES = ["caps", "labels", "seals"]
STREAMS = [(line, f"{line}-cam-{n}") for line in LINES for n in (1, 2)]
FRAMES = 945
RATE_PER_S = 7.0  # 135 s of stream: every fault below, with calm before and after
STALL_S = {"redis": 18.0, "minio": 18.0, "kafka": 17.0}
# Frames captured this long after a fault ends count as "outside faults" for latency.
RECOVERY_S = 10.0


def _fault_schedule(
    workers: list[WorkerProcess], windows: list[tuple[str, float, float]]
) -> list[threading.Thread]:
    """The faults, in order, relative to the start of the camera; records each fault's window.

    Returns the threads that close the kill windows once the restarted workers are ready.
    """
    recoveries: list[threading.Thread] = []

    def at(offset_s: float, start: float) -> None:
        time.sleep(max(0.0, start + offset_s - time.monotonic()))

    def kill_and_restart(worker: WorkerProcess) -> None:
        begin = time.time()
        worker.kill_mid_batch()
        time.sleep(2.0)
        worker.start()

        def until_ready() -> None:
            # The fault lasts until the restarted worker is ready again (its partitions and
            # models back), however long the group and the model loads take.
            while worker.probes()["readyz"] != 200 and time.time() - begin < 120:
                time.sleep(0.5)
            windows.append((f"kill {worker.name}", begin, time.time()))

        recoveries.append(threading.Thread(target=until_ready, daemon=True))
        recoveries[-1].start()

    def stall(service: str) -> None:
        begin = time.time()
        seen: dict[str, set[int]] = {worker.name: set() for worker in workers}
        with frozen(service):
            deadline = time.monotonic() + STALL_S[service]
            while time.monotonic() < deadline:
                time.sleep(0.5)
                for worker in workers:
                    probes = worker.probes()
                    # A worker being restarted does not answer yet; one that answers is alive.
                    assert probes["healthz"] in (0, 200), (worker.name, probes)
                    seen[worker.name].add(probes["readyz"])
        windows.append((service, begin, time.time()))
        if service != "kafka":
            # As Kubernetes sees it: alive throughout, and out of the Service while a sink
            # that a worker writes to is down (a worker may have had nothing to write).
            assert any(503 in statuses for statuses in seen.values()), (service, seen)

    start = time.monotonic()
    at(20, start)
    kill_and_restart(workers[0])
    at(28, start)
    stall("redis")
    at(54, start)
    kill_and_restart(workers[1])
    at(62, start)
    stall("minio")
    at(86, start)
    stall("kafka")
    at(108, start)
    kill_and_restart(workers[0])
    return recoveries


def _dead_letters(stack: StackEndpoints, topic: str) -> list[dict[str, str]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    try:
        return [{k: v.decode(errors="replace") for k, v in r.headers} for r in consumer]
    finally:
        consumer.close()


def _latency_s(entries: list[StreamEntry], keep: Callable[[StreamEntry], bool]) -> list[float]:
    return [(e.scored_at_ms - e.captured_at_ms) / 1000 for e in entries if keep(e)]


def _timeline(entries: list[StreamEntry]) -> list[dict[str, float]]:
    """Per 10 s of capture time from the first frame: frames, p50 and max latency (s)."""
    if not entries:
        return []
    first = min(e.captured_at_ms for e in entries)
    buckets: dict[int, list[float]] = {}
    for entry in entries:
        bucket = (entry.captured_at_ms - first) // 10_000
        buckets.setdefault(bucket, []).append((entry.scored_at_ms - entry.captured_at_ms) / 1000)
    return [
        {
            "from_s": bucket * 10,
            "frames": len(values),
            "p50": round(percentile(values, 0.5), 2),
            "max": round(max(values), 2),
        }
        for bucket, values in sorted(buckets.items())
    ]


def _report(
    sent: list[SentFrame],
    entries: list[StreamEntry],
    dead: list[dict[str, str]],
    workers: list[WorkerProcess],
    windows: list[tuple[str, float, float]],
    seconds: float,
) -> dict[str, object]:
    counts = Counter((e.product_line, e.camera_id, e.frame_id) for e in entries)
    expected = {(f.product_line, f.camera_id, f.frame_id) for f in sent}

    def outside_faults(entry: StreamEntry) -> bool:
        captured = entry.captured_at_ms / 1000
        return not any(begin <= captured <= end + RECOVERY_S for _, begin, end in windows)

    overall = _latency_s(entries, lambda _: True)
    calm = _latency_s(entries, outside_faults)
    return {
        "frames_sent": len(sent),
        "frames_scored": len(counts),
        "lost": len(expected - set(counts)),
        "duplicate_stream_entries": sum(n - 1 for n in counts.values()),
        "unexpected_entries": len(set(counts) - expected),
        "dead_letters": len(dead),
        "kills": sum(w.kills for w in workers),
        "unexpected_exits": sum(len(w.unexpected_exits) for w in workers),
        "stalls": {
            service: round(end - begin, 1)
            for service, begin, end in windows
            if not service.startswith("kill")
        },
        "kill_windows_s": [
            round(end - begin, 1) for service, begin, end in windows if service.startswith("kill")
        ],
        "latency_s": {
            "p50": round(percentile(overall, 0.5), 3),
            "p99": round(percentile(overall, 0.99), 3),
            "max": round(max(overall, default=float("nan")), 3),
        },
        "latency_outside_faults_s": {
            "frames": len(calm),
            "p50": round(percentile(calm, 0.5), 3),
            "p99": round(percentile(calm, 0.99), 3),
        },
        "latency_by_10s_of_capture": _timeline(entries),
        "wall_s": round(seconds, 1),
    }


def test_no_frame_is_lost_duplicated_or_dead_lettered_under_kills_and_frozen_services(
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
    for seed, line in enumerate(LINES):
        publish(minio_client, s3_bucket, make_artifact(tmp_path / line, line, "v1", seed), line)
    group = unique_name()
    settings = worker_settings(
        stack,
        topic=kafka_topic,
        group=group,
        redis_prefix=redis_prefix,
        model_bucket=s3_bucket,
        heatmap_bucket=heatmap_bucket,
        cache_dir=tmp_path / "cache",
        log_level="INFO",
        shutdown_grace_s=20,
    )
    env = settings_env(settings)
    # A killed worker's partitions move once the group notices it is gone.
    env["RDQC_KAFKA__SESSION_TIMEOUT_MS"] = "10000"
    workers = [WorkerProcess(name, env, tmp_path) for name in ("worker-a", "worker-b")]
    camera = Camera(
        stack.kafka_bootstrap, kafka_topic, STREAMS, synthetic_frames(FRAMES, 3), RATE_PER_S
    )
    windows: list[tuple[str, float, float]] = []
    started = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        publishing = camera.run()
        recoveries = _fault_schedule(workers, windows)
        publishing.join(timeout=300)
        assert not publishing.is_alive() and not camera.errors, camera.errors

        reached_end = commits_reach_end(stack, kafka_admin, group, kafka_topic)

        def done() -> bool:
            for worker in workers:
                worker.check_alive()
            return reached_end()

        wait_for(done, 240, "the group to commit every frame")
        for recovery in recoveries:
            recovery.join(timeout=120)
        exit_codes = {worker.name: worker.stop() for worker in workers}
    except BaseException:
        for worker in workers:
            samples = "\n".join(s for s in worker.metrics() if "_bucket" not in s)
            worker.stop(timeout_s=5)
            print(
                f"--- {worker.name} metrics ---\n{samples}\n--- log tail ---\n{worker.log_tail()}"
            )
        raise
    seconds = time.monotonic() - started

    entries = stream_entries(redis_client, redis_prefix, LINES)
    dead = _dead_letters(stack, f"{kafka_topic}.dlq")
    report = _report(camera.sent, entries, dead, workers, windows, seconds)
    write_report(report, Path(os.environ.get("RDQC_FAULT_REPORT", tmp_path / "fault-report.json")))
    print(f"fault suite: {report}")

    assert exit_codes == {"worker-a": 0, "worker-b": 0}, "a worker did not drain on SIGTERM"
    assert report["unexpected_exits"] == 0
    assert report["kills"] == 3
    assert set(report["stalls"]) == set(STALL_S)  # type: ignore[arg-type]
    assert len(report["kill_windows_s"]) == 3  # type: ignore[arg-type]
    assert report["lost"] == 0
    assert report["duplicate_stream_entries"] == 0
    assert report["unexpected_entries"] == 0
    assert report["dead_letters"] == 0, dead[:3]
    flagged = [e for e in entries if e.is_anomaly]
    assert flagged, "no frame was flagged: the heatmap check would prove nothing"
    for entry in flagged:
        bucket, _, key = entry.heatmap_uri.removeprefix("s3://").partition("/")
        assert bucket == heatmap_bucket
        minio_client.stat_object(bucket, key)
