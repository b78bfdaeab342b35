"""The heartbeat beside the loop: the snapshot of models in use it reads, and a Redis that hangs
every heartbeat write while frames keep being scored at full speed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pipeline_harness import Harness, loaded_model, noise_png, scored_ids

from rdcore import ReverseDistillation
from worker.heartbeat.redis_store import RedisHeartbeatStore
from worker.heartbeat.writer import HeartbeatWriter
from worker.modelstore.memory import MemoryModelStore

pytestmark = pytest.mark.unit


def test_the_snapshot_names_the_manifest_in_use_per_line_and_is_replaced_never_changed(
    module: ReverseDistillation, threshold: float
) -> None:
    caps_v1 = loaded_model(module, "caps", "v1", threshold)
    lids_v1 = loaded_model(module, "lids", "v1", threshold)
    harness = Harness(MemoryModelStore({"caps": caps_v1, "lids": lids_v1}))
    assert harness.pipeline.models_in_use() == {}

    with harness.running():
        for seed in range(4):
            harness.add(seed % 2, "caps" if seed < 2 else "lids", noise_png(seed))
        harness.wait_for(lambda: len(harness.scores.results) == 4)
        before = harness.pipeline.models_in_use()
        assert dict(before) == {"caps": caps_v1.manifest, "lids": lids_v1.manifest}

        caps_v2 = loaded_model(module, "caps", "v2", threshold)
        harness.store.publish("caps", caps_v2)
        harness.wait_for(lambda: harness.store.versions().get("caps") == "v2")
        harness.add(0, "caps", noise_png(9))
        harness.wait_for(lambda: len(harness.scores.results) == 5)
        after = harness.pipeline.models_in_use()

    assert dict(after) == {"caps": caps_v2.manifest, "lids": lids_v1.manifest}
    assert dict(before) == {"caps": caps_v1.manifest, "lids": lids_v1.manifest}  # a reader's copy
    with pytest.raises(TypeError):
        after["caps"] = caps_v1.manifest  # type: ignore[index]


class SilentRedis:
    """Accepts connections and never answers: a frozen Redis, on a port of its own."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            self.connections.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentRedis]:
    silent = SilentRedis()
    yield silent
    silent.close()


def test_a_hanging_heartbeat_write_delays_no_frame(
    module: ReverseDistillation, threshold: float, silent_redis: SilentRedis
) -> None:
    harness = Harness(MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)}))
    store = RedisHeartbeatStore(
        f"redis://127.0.0.1:{silent_redis.port}/0", "rdqc", socket_timeout_s=60
    )
    writer = HeartbeatWriter(
        store,
        worker_id="test-worker",
        interval_s=0.05,
        ttl_s=1.0,
        live_models=harness.pipeline.models_in_use,
        metrics=harness.metrics,
        stop_timeout_s=0.5,
    )
    writer.start()
    try:
        with harness.running():
            harness.wait_for(lambda: len(silent_redis.connections) == 1)  # a write hangs now
            started = time.monotonic()
            for seed in range(24):
                harness.add(seed % 2, "caps", noise_png(seed))
            harness.wait_for(lambda: len(harness.scores.results) == 24)
            scoring_s = time.monotonic() - started
            harness.wait_for(harness.all_committed)
        # The write still hangs: every frame went through while it did.
        assert harness.metrics.registry.get_sample_value("rdqc_heartbeat_failures_total") == 0
    finally:
        stopping = time.monotonic()
        writer.stop()
        stop_s = time.monotonic() - stopping
    assert len(set(scored_ids(harness))) == 24
    assert scoring_s < 15
    assert stop_s < 2  # bounded by stop_timeout_s, not by the 60 s socket timeout
