"""The heartbeat thread: what it writes; failing or hanging stores never reach the caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import pytest
from structlog.testing import capture_logs

from rdcore import ModelConfig
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from worker.heartbeat import Heartbeat, workers_by_version
from worker.heartbeat.errors import HeartbeatError
from worker.heartbeat.redis_store import RedisHeartbeatStore
from worker.heartbeat.writer import HeartbeatWriter
from worker.observability.prometheus import Metrics

pytestmark = pytest.mark.unit


def manifest(product_line: str, version: str, threshold: float = 0.2) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION,
        product_line=product_line,
        model_version=version,
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=ModelConfig(backbone="resnet18", image_size=64),
        calibration=calibrate([threshold - 0.1, threshold, threshold + 0.1]),
        training={},
        metrics=None,
        weights_sha256="0" * 64,
    )


class RecordingStore:
    """Keeps what it is given; fails the first ``failing_writes`` writes."""

    def __init__(self, failing_writes: int = 0, failing_removal: bool = False) -> None:
        self.written: list[Heartbeat] = []
        self.removed: list[str] = []
        self.closed = False
        self.failing_writes = failing_writes
        self.failing_removal = failing_removal
        self.release = threading.Event()
        self.release.set()

    def write(self, heartbeat: Heartbeat) -> None:
        self.release.wait()
        if self.failing_writes:
            self.failing_writes -= 1
            raise HeartbeatError("store down")
        self.written.append(heartbeat)

    def remove(self, worker_id: str) -> None:
        if self.failing_removal:
            raise HeartbeatError("store down")
        self.removed.append(worker_id)

    def live(self) -> list[Heartbeat]:
        return self.written[-1:]

    def close(self) -> None:
        self.closed = True


def failures(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("rdqc_heartbeat_failures_total") or 0.0


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def make_writer() -> Iterator[Callable[..., HeartbeatWriter]]:
    made: list[HeartbeatWriter] = []

    def make(
        store: RecordingStore,
        metrics: Metrics,
        *,
        live_models: Callable[[], Mapping[str, Manifest]] = dict,
        shadow_models: Callable[[], Mapping[str, Manifest]] = dict,
        stop_timeout_s: float = 5.0,
    ) -> HeartbeatWriter:
        writer = HeartbeatWriter(
            store,
            worker_id="w-1",
            interval_s=0.01,
            ttl_s=1.0,
            live_models=live_models,
            shadow_models=shadow_models,
            metrics=metrics,
            stop_timeout_s=stop_timeout_s,
        )
        made.append(writer)
        writer.start()
        return writer

    yield make
    for writer in made:
        writer.stop()


def test_the_record_names_the_worker_its_frames_and_the_digest_of_each_lines_model(
    make_writer: Callable[..., HeartbeatWriter],
) -> None:
    metrics = Metrics()
    metrics.frames_scored.labels("caps").inc(3)
    metrics.frames_scored.labels("lids").inc(4)
    metrics.frames_dead_lettered.labels("undecodable").inc(2)
    live = {"caps": manifest("caps", "v1"), "lids": manifest("lids", "v7")}
    shadow = {"caps": manifest("caps", "v2", threshold=0.3)}
    store = RecordingStore()
    before_ms = int(time.time() * 1000)

    make_writer(store, metrics, live_models=lambda: live, shadow_models=lambda: shadow)
    wait_until(lambda: len(store.written) >= 2)

    first, latest = store.written[0], store.written[-1]
    assert latest.worker_id == "w-1"
    assert latest.host == socket.gethostname()
    assert latest.pid > 0
    assert before_ms <= latest.started_at_ms == first.started_at_ms <= first.last_seen_ms
    assert first.last_seen_ms <= latest.last_seen_ms
    assert (latest.interval_s, latest.ttl_s) == (0.01, 1.0)
    assert (latest.frames_scored, latest.frames_dead_lettered) == (7, 2)
    caps, lids = latest.models["caps"], latest.models["lids"]
    assert (caps.live.version, caps.live.digest) == ("v1", live["caps"].digest())
    assert caps.shadow is not None
    assert (caps.shadow.version, caps.shadow.digest) == ("v2", shadow["caps"].digest())
    assert (lids.live.version, lids.live.digest, lids.shadow) == ("v7", live["lids"].digest(), None)
    assert caps.live.short_digest == live["caps"].digest()[:12]


def test_workers_group_by_product_line_and_digest() -> None:
    metrics = Metrics()
    v1, v2 = manifest("caps", "v1"), manifest("caps", "v2")
    records = []
    for worker_id, live in (("a", v1), ("b", v2), ("c", v1)):
        store = RecordingStore()
        writer = HeartbeatWriter(
            store,
            worker_id=worker_id,
            interval_s=1,
            ttl_s=3,
            live_models=lambda live=live: {"caps": live},
            metrics=metrics,
        )
        records.append(writer.heartbeat())

    grouped = workers_by_version(records)

    assert {key: [h.worker_id for h in hs] for key, hs in grouped.items()} == {
        ("caps", v1.digest()): ["a", "c"],
        ("caps", v2.digest()): ["b"],
    }
    assert workers_by_version(records, role="shadow") == {}


def test_failed_writes_are_counted_logged_once_per_streak_and_never_raised(
    make_writer: Callable[..., HeartbeatWriter],
) -> None:
    metrics = Metrics()
    store = RecordingStore(failing_writes=3)

    with capture_logs() as logs:
        make_writer(store, metrics)
        wait_until(lambda: len(store.written) >= 1)

    assert failures(metrics) == 3
    events = [(entry["event"], entry["log_level"]) for entry in logs]
    assert events == [
        ("heartbeat not written; retried every interval", "warning"),
        ("heartbeat written again", "info"),
    ]
    assert logs[0]["error"] == "store down"
    assert logs[1]["failed_writes"] == 3


def test_stopping_removes_the_record_and_closes_the_store(
    make_writer: Callable[..., HeartbeatWriter],
) -> None:
    store = RecordingStore()
    writer = make_writer(store, Metrics())
    wait_until(lambda: len(store.written) >= 1)

    writer.stop()
    written = len(store.written)
    time.sleep(0.05)

    assert store.removed == ["w-1"]
    assert store.closed
    assert len(store.written) == written  # nothing written after the removal


def test_a_failed_removal_is_counted_and_logged_not_raised(
    make_writer: Callable[..., HeartbeatWriter],
) -> None:
    metrics = Metrics()
    store = RecordingStore(failing_removal=True)
    writer = make_writer(store, metrics)
    wait_until(lambda: len(store.written) >= 1)

    with capture_logs() as logs:
        writer.stop()

    assert failures(metrics) == 1
    assert [e["event"] for e in logs] == ["heartbeat not removed; it expires after its ttl"]


def test_stopping_waits_no_longer_than_its_bound_for_a_hanging_store(
    make_writer: Callable[..., HeartbeatWriter],
) -> None:
    store = RecordingStore()
    writer = make_writer(store, Metrics(), stop_timeout_s=0.2)
    wait_until(lambda: len(store.written) >= 1)
    store.release.clear()  # the next write hangs
    time.sleep(0.05)

    started = time.monotonic()
    with capture_logs() as logs:
        writer.stop()

    assert time.monotonic() - started < 1.0
    assert [e["event"] for e in logs] == [
        "heartbeat still being written at exit; it expires after its ttl"
    ]
    assert not store.closed  # still in use by the hanging write
    store.release.set()
    wait_until(lambda: store.removed == ["w-1"])


def test_an_unreachable_redis_is_a_heartbeat_error_without_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisHeartbeatStore(f"redis://:s3cret@127.0.0.1:{port}/0", "rdqc")
    heartbeat = HeartbeatWriter(
        store, worker_id="w-1", interval_s=1, ttl_s=3, live_models=dict, metrics=Metrics()
    ).heartbeat()

    for attempt in (lambda: store.write(heartbeat), store.live, lambda: store.remove("w-1")):
        with pytest.raises(HeartbeatError) as raised:
            attempt()
        assert "s3cret" not in str(raised.value)
    store.close()
