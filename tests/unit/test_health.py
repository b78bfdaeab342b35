"""Probes: liveness follows the loop's heartbeat, readiness needs partitions, the model store and
sinks that are not failing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from worker.observability.health import Health

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[Health, FakeClock, int]]:
    clock = FakeClock()
    health = Health(max_silence_s=10, clock=clock)
    port = health.serve(0, host="127.0.0.1")
    yield health, clock, port
    health.close()


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_liveness_follows_the_loop_heartbeat(served: tuple[Health, FakeClock, int]) -> None:
    health, clock, port = served
    assert get(port, "/healthz")[0] == 200
    clock.now = 11
    status, body = get(port, "/healthz")
    assert (status, body["alive"]) == (503, False)
    health.beat()
    assert get(port, "/healthz")[0] == 200


def test_readiness_needs_partitions_and_a_model_store(
    served: tuple[Health, FakeClock, int],
) -> None:
    health, _, port = served
    status, body = get(port, "/readyz")
    assert (status, body["model_store"]) == (503, "not contacted yet")
    health.set_assigned(True)
    health.set_models_ok(True)
    assert get(port, "/readyz") == (
        200,
        {"ready": True, "partitions_assigned": True, "model_store": "ok", "sinks": "ok"},
    )
    health.set_models_ok(False, "pointer unreadable")
    assert get(port, "/readyz")[1]["model_store"] == "pointer unreadable"
    assert get(port, "/nope")[0] == 404


def test_a_failing_sink_makes_the_worker_unready_but_not_dead(
    served: tuple[Health, FakeClock, int],
) -> None:
    health, _, port = served
    health.set_assigned(True)
    health.set_models_ok(True)

    health.set_sinks_ok(False, "dead_letters: Kafka dead-letter sink: 1 records failed")

    status, body = get(port, "/readyz")
    assert (status, body["ready"]) == (503, False)
    assert body["sinks"] == "dead_letters: Kafka dead-letter sink: 1 records failed"
    assert get(port, "/healthz")[0] == 200  # waiting for storage is not being wedged
    health.set_sinks_ok(True)
    assert get(port, "/readyz")[0] == 200
