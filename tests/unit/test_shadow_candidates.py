"""Shadow candidates in the model lifecycle, turn by turn on a frozen clock: found by polling,
retried with backoff when they fail to load, and never a concern of readiness or the live model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pipeline_harness import loaded_model
from structlog.testing import capture_logs

from rdcore import ReverseDistillation
from worker.modelstore.lifecycle import ModelLifecycle
from worker.modelstore.memory import MemoryModelStore
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.ports import ModelPointer

pytestmark = pytest.mark.unit

FAILED = (
    "shadow candidate cannot be loaded; retried, live model unaffected",
    "shadow candidate still cannot be loaded",
)


class FrozenClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, store: MemoryModelStore) -> None:
        self.store, self.clock = store, FrozenClock()
        self.metrics, self.health = Metrics(), Health()
        self.health.set_assigned(True)
        self.lifecycle = ModelLifecycle(
            store, self.metrics, self.health, shadow_testing=True, clock=self.clock
        )

    def turn(self, until: Callable[[], bool]) -> None:
        """Turn as the loop does (settle, ask for the live model) until ``until()`` holds."""
        deadline = time.monotonic() + 10
        while not until():
            assert time.monotonic() < deadline, "timed out"
            self.lifecycle.settle()
            self.lifecycle.model("caps")
            time.sleep(0.002)

    def candidate_version(self) -> str | None:
        candidate = self.lifecycle.shadow_candidate("caps")
        return None if candidate is None else candidate.version


@pytest.fixture
def make_setup() -> Iterator[Callable[[MemoryModelStore], Setup]]:
    made: list[Setup] = []

    def make(store: MemoryModelStore) -> Setup:
        made.append(Setup(store))
        return made[-1]

    yield make
    for setup in made:
        setup.lifecycle.close()


def test_a_candidate_that_fails_to_load_is_retried_with_backoff_and_touches_nothing_else(
    module: ReverseDistillation, threshold: float, make_setup: Callable[..., Setup]
) -> None:
    live = loaded_model(module, "caps", "v1", threshold)
    store = MemoryModelStore({"caps": live})
    store.start_shadow("caps", loaded_model(module, "caps", "v2", threshold))
    store.break_shadow("caps", "weights do not match their sha256")
    setup = make_setup(store)

    with capture_logs() as logs:

        def failures() -> list[dict[str, Any]]:
            return [entry for entry in logs if entry["event"] in FAILED]

        for attempt in range(1, 4):
            setup.turn(lambda n=attempt: len(failures()) == n)
            delay = failures()[-1]["retry_in_s"]
            for _ in range(3):  # not a moment before its time
                setup.lifecycle.settle()
            assert store.shadow_load_attempts["caps"] == attempt
            assert setup.lifecycle.model("caps") is live and setup.health.readiness()[0]
            assert setup.candidate_version() is None
            setup.clock.now += delay + 0.01
        store.start_shadow("caps", loaded_model(module, "caps", "v2", threshold))  # fixed
        setup.lifecycle.refresh()
        setup.turn(lambda: setup.candidate_version() == "v2")

    assert [entry["log_level"] for entry in failures()] == ["warning", "debug", "debug"]
    failed = setup.metrics.registry.get_sample_value(
        "rdqc_shadow_load_failures_total", {"product_line": "caps"}
    )
    assert failed == 3
    assert setup.health.readiness()[0]


def test_an_unreadable_pointer_leaves_the_candidate_as_it_was(
    module: ReverseDistillation, threshold: float, make_setup: Callable[..., Setup]
) -> None:
    class FlakyPointers(MemoryModelStore):
        unreachable = False
        reads = 0

        def shadow(self, product_line: str) -> ModelPointer | None:
            self.reads += 1
            if self.unreachable:
                raise ConnectionError("injected: store unreachable")
            return super().shadow(product_line)

    store = FlakyPointers({"caps": loaded_model(module, "caps", "v1", threshold)})
    store.start_shadow("caps", loaded_model(module, "caps", "v2", threshold))
    setup = make_setup(store)
    setup.turn(lambda: setup.candidate_version() == "v2")

    store.unreachable = True
    with capture_logs() as logs:
        for _ in range(3):
            setup.lifecycle.refresh()
            setup.turn(
                lambda: any(e["event"].startswith("shadow pointer unreadable") for e in logs)
            )
    assert setup.candidate_version() == "v2"
    assert sum(e["event"].startswith("shadow pointer unreadable") for e in logs) == 1

    store.unreachable = False
    store.stop_shadow("caps")
    setup.lifecycle.refresh()
    setup.turn(lambda: setup.candidate_version() is None)
