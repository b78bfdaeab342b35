"""The worker's loop carries on through a refused commit, a sink that keeps failing and a sink
that is down when it starts: it stays alive (the loop beats), is unready while a sink fails,
and commits everything once it can, without losing or duplicating a dead letter. Frames without
a product line are dead-lettered before any model is needed, so these run without one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from worker.frame_decoder import FrameDecoder
from worker.frames import TopicPartition
from worker.modelstore.memory import MemoryModelStore
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline, PipelineConfig
from worker.scoring import BatchScorer
from worker.sinks.memory import MemoryDeadLetterSink, MemoryHeatmapSink, MemoryScoreSink
from worker.sources.memory import MemorySource

pytestmark = pytest.mark.unit

FAST = PipelineConfig(max_batch_size=4, max_wait_s=0.01, max_queue=16, sink_retry_s=0.02)
TP = TopicPartition("frames.inbound", 0)


class Worker:
    def __init__(self) -> None:
        self.source = MemorySource()
        self.dead_letters = MemoryDeadLetterSink()
        self.metrics = Metrics()
        self.health = Health(max_silence_s=5.0)
        self.health.set_models_ok(True)  # no model is asked for: no frame gets that far
        self.errors: list[BaseException] = []
        self.pipeline = Pipeline(
            source=self.source,
            dead_letters=self.dead_letters,
            scores=MemoryScoreSink(),
            heatmaps=MemoryHeatmapSink(),
            models=MemoryModelStore(),
            decoder=FrameDecoder(1 << 20, 16, 4096),
            scorer=BatchScorer("cpu"),
            config=FAST,
            worker_id="w-1",
            metrics=self.metrics,
            health=self.health,
        )

    def add_rejects(self, count: int) -> None:
        for n in range(count):
            self.source.append(0, f"no product line {n}".encode())

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(20)
        assert not thread.is_alive(), "the worker did not stop"
        assert not self.errors, f"the worker crashed: {self.errors[0]!r}"

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert not self.errors, f"the worker crashed: {self.errors[0]!r}"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def _run(self, stop: threading.Event) -> None:
        try:
            self.pipeline.run(stop)
        except BaseException as exc:
            self.errors.append(exc)


def test_refused_commits_are_retried_and_the_worker_keeps_running() -> None:
    worker = Worker()
    worker.source.fail_commits(3)
    worker.add_rejects(5)

    with worker.running():
        worker.wait_for(lambda: worker.source.committed() == {TP: 5})
        worker.add_rejects(2)  # and it keeps taking work
        worker.wait_for(lambda: worker.source.committed() == {TP: 7})

    assert worker.sample("rdqc_commit_failures_total") == 3
    assert [r.record.offset for r in worker.dead_letters.rejections] == list(range(7))


def test_a_failing_sink_makes_the_worker_unready_not_dead_until_it_recovers() -> None:
    worker = Worker()
    worker.dead_letters.fail_flushes(1_000_000)
    worker.add_rejects(3)

    with worker.running():
        worker.wait_for(
            lambda: worker.sample("rdqc_sink_flush_failures_total", sink="dead_letters") >= 4
        )
        ready, body = worker.health.readiness()
        assert not ready
        assert str(body["sinks"]).startswith("dead_letters: ")
        assert worker.sample("rdqc_sink_failing", sink="dead_letters") == 1
        assert worker.health.liveness()[0]  # the loop beats while it waits
        assert worker.source.committed() == {}

        worker.dead_letters.fail_flushes(0)
        worker.wait_for(lambda: worker.source.committed() == {TP: 3})
        worker.wait_for(lambda: worker.health.readiness()[0])

    assert worker.sample("rdqc_sink_failing", sink="dead_letters") == 0
    assert [r.record.offset for r in worker.dead_letters.rejections] == [0, 1, 2]


def test_a_sink_down_at_start_up_is_waited_for_not_turned_into_an_exit() -> None:
    worker = Worker()
    worker.dead_letters.fail_setups(2)
    worker.add_rejects(3)

    with worker.running():
        worker.wait_for(lambda: str(worker.health.readiness()[1]["sinks"]).startswith("starting"))
        assert worker.health.liveness()[0]
        worker.wait_for(lambda: worker.source.committed() == {TP: 3})
        worker.wait_for(lambda: worker.health.readiness()[0])

    assert [r.record.offset for r in worker.dead_letters.rejections] == [0, 1, 2]


def test_a_stop_while_waiting_for_a_sink_at_start_up_ends_the_wait_at_once() -> None:
    worker = Worker()
    worker.dead_letters.fail_setups(1_000_000)

    with worker.running():
        worker.wait_for(lambda: str(worker.health.readiness()[1]["sinks"]).startswith("starting"))
        stop_requested = time.monotonic()

    assert time.monotonic() - stop_requested < 5.0
    assert not worker.source.committed()
