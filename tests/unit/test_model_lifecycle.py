"""The model lifecycle: never blocks the loop, waits out load failures with backoff, and tells.

The loop asks ``model(line)`` on every turn; ``turn`` does the same here, on a frozen clock, so
the backoff schedule can be checked attempt by attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from rdcore import ModelConfig, Preprocess, reverse_distillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from worker.errors import UnknownProductLine
from worker.modelstore.lifecycle import ModelLifecycle
from worker.modelstore.memory import MemoryModelStore
from worker.observability.health import Health
from worker.observability.prometheus import Metrics

pytestmark = pytest.mark.unit

CONFIG = ModelConfig(backbone="resnet18", image_size=64)
FAILED = ("model unavailable; its frames wait and the load is retried", "model still unavailable")


def loaded_model(version: str) -> LoadedModel:
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line="caps",
        model_version=version,
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=CONFIG,
        calibration=calibrate([0.1, 0.2, 0.3]),
        training={},
        metrics=None,
        weights_sha256="0" * 64,
    )
    module = reverse_distillation(CONFIG, "random").eval()
    return LoadedModel(module, manifest, Preprocess.from_config(CONFIG), Path("unused"))


class FrozenClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, store: MemoryModelStore, **options: Any) -> None:
        self.store, self.clock = store, FrozenClock()
        self.metrics, self.health = Metrics(), Health()
        self.health.set_assigned(True)
        self.lifecycle = ModelLifecycle(
            store, self.metrics, self.health, clock=self.clock, **options
        )

    def turn(self, until: Callable[[], bool], line: str = "caps") -> None:
        """Ask for the model as the loop does on each turn, until ``until()`` holds."""
        deadline = time.monotonic() + 10
        while not until():
            assert time.monotonic() < deadline, "timed out"
            self.lifecycle.settle()
            with suppress(UnknownProductLine):
                self.lifecycle.model(line)
            time.sleep(0.002)

    def unavailable(self) -> float | None:
        labels = {"product_line": "caps"}
        return self.metrics.registry.get_sample_value("rdqc_model_unavailable", labels)


@pytest.fixture
def v1() -> LoadedModel:
    return loaded_model("v1")


@pytest.fixture
def make_setup() -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def make(store: MemoryModelStore, **options: Any) -> Setup:
        made.append(Setup(store, **options))
        return made[-1]

    yield make
    for setup in made:
        setup.lifecycle.close()


def test_failed_loads_are_retried_with_capped_jittered_backoff_and_logged_once(
    v1: LoadedModel, make_setup: Callable[..., Setup]
) -> None:
    store = MemoryModelStore({"caps": v1})
    store.fail_loads("caps", 5)
    setup = make_setup(store, retry_first_s=1.0, retry_max_s=4.0)

    with capture_logs() as logs:

        def failures() -> list[dict[str, Any]]:
            return [entry for entry in logs if entry["event"] in FAILED]

        for attempt in range(1, 6):
            setup.turn(lambda n=attempt: len(failures()) == n)
            delay = failures()[-1]["retry_in_s"]
            ceiling = min(4.0, 2.0 ** (attempt - 1))
            assert ceiling / 2 - 0.01 <= delay <= ceiling + 0.01
            for _ in range(3):  # not a moment before its time
                assert setup.lifecycle.model("caps") is None
            assert store.load_attempts["caps"] == attempt
            ready, body = setup.health.readiness()
            assert not ready and "caps: ModelLoadError" in body["model_store"]
            assert setup.unavailable() == 1
            setup.clock.now += delay + 0.01
        setup.turn(lambda: setup.lifecycle.model("caps") is v1)

    levels = [entry["log_level"] for entry in failures()]
    assert levels == ["error", "debug", "debug", "debug", "debug"]  # once per failure streak
    assert any(e["event"] == "model available again; its frames are scored" for e in logs)
    assert setup.health.readiness()[0]
    assert setup.unavailable() == 0


def test_the_model_is_never_waited_for_on_the_asking_thread(
    v1: LoadedModel, make_setup: Callable[..., Setup]
) -> None:
    store = MemoryModelStore({"caps": v1})
    store.hold_loads("caps")
    setup = make_setup(store)
    try:
        started = time.monotonic()
        for _ in range(10):
            assert setup.lifecycle.model("caps") is None
        assert time.monotonic() - started < 0.5
    finally:
        store.release_loads("caps")
    setup.turn(lambda: setup.lifecycle.model("caps") is v1)
    assert setup.lifecycle.preprocess_by_line["caps"] == v1.preprocess


def test_no_model_published_is_remembered_for_its_ttl(
    v1: LoadedModel, make_setup: Callable[..., Setup]
) -> None:
    store = MemoryModelStore()
    setup = make_setup(store, unknown_ttl_s=10.0)

    def unknown() -> bool:
        try:
            setup.lifecycle.model("caps")
        except UnknownProductLine:
            return True
        return False

    setup.turn(unknown)
    for _ in range(3):
        with pytest.raises(UnknownProductLine, match="no model is published"):
            setup.lifecycle.model("caps")
    assert store.load_attempts["caps"] == 1

    store.publish("caps", v1)
    setup.clock.now += 10.0
    setup.turn(lambda: setup.lifecycle.model("caps") is v1)
    assert store.load_attempts["caps"] == 2


def test_a_refresh_runs_on_the_loader_and_the_new_version_takes_over(
    v1: LoadedModel, make_setup: Callable[..., Setup]
) -> None:
    store = MemoryModelStore({"caps": v1})
    setup = make_setup(store)
    setup.turn(lambda: setup.lifecycle.model("caps") is v1)
    v2 = loaded_model("v2")
    store.publish("caps", v2)

    setup.lifecycle.refresh()
    setup.turn(lambda: setup.lifecycle.model("caps") is v2)

    assert store.refresh_calls == 1
    assert setup.health.readiness()[0]


def test_an_abandoned_line_is_no_longer_reported_unavailable(
    v1: LoadedModel, make_setup: Callable[..., Setup]
) -> None:
    store = MemoryModelStore({"caps": v1})
    store.break_line("caps")
    setup = make_setup(store)
    setup.turn(lambda: setup.unavailable() == 1)

    setup.lifecycle.abandon("caps")  # its frames' partitions were revoked

    assert setup.unavailable() == 0
    assert setup.health.readiness()[0]
