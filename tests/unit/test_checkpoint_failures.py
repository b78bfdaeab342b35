"""Checkpoint: a failing sink or a refused commit is seen (metrics, readiness, one error log),
waited out with a jittered, capped backoff, and never loses a frame or crashes the worker."""

from __future__ import annotations

import pytest
import structlog

from worker.backoff import backoff_s
from worker.frames import Rejection, SourceRecord, TopicPartition
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline.checkpoint import Checkpoint
from worker.pipeline.config import PipelineConfig
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.work import RejectOutput
from worker.sinks.memory import MemoryDeadLetterSink, MemoryHeatmapSink, MemoryScoreSink
from worker.sinks.outputs import Outputs
from worker.sources.memory import MemorySource

pytestmark = pytest.mark.unit

FIRST_RETRY_S = 1.0
TP = TopicPartition("frames.inbound", 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A checkpoint over memory sinks and a memory source, on a clock the test moves."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.source = MemorySource()
        self.source.setup(lambda _: None, lambda _: None)
        self.dead_letters = MemoryDeadLetterSink()
        self.outputs = Outputs(
            dead_letters=self.dead_letters, scores=MemoryScoreSink(), heatmaps=MemoryHeatmapSink()
        )
        self.ledger = OffsetLedger(self.clock)
        self.metrics = Metrics()
        self.health = Health(clock=self.clock)
        self.health.set_assigned(True)
        self.health.set_models_ok(True)
        self.checkpoint = Checkpoint(
            self.outputs,
            self.source,
            self.ledger,
            self.metrics,
            PipelineConfig(sink_retry_s=FIRST_RETRY_S),
            "w-1",
            self.clock,
            self.health,
        )

    def reject(self, count: int) -> list[SourceRecord]:
        """``count`` records polled and rejected, waiting in the checkpoint."""
        for n in range(count):
            self.source.append(0, f"bad-{n}".encode())
        records = self.source.poll(0, count)
        for record in records:
            rejection = Rejection(record, "missing_product_line", "FrameContractError", "no")
            self.checkpoint.add(RejectOutput(self.ledger.track(record), rejection))
        return records

    def sample(self, name: str, sink: str | None = None) -> float:
        labels = {} if sink is None else {"sink": sink}
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def ready(self) -> bool:
        return self.health.readiness()[0]


def test_a_failing_sink_is_counted_named_and_unready_until_a_flush_succeeds() -> None:
    rig = Rig()
    records = rig.reject(2)
    rig.dead_letters.fail_flushes(2)

    rig.checkpoint.write_flush_commit()

    assert rig.sample("rdqc_sink_flush_failures_total", "dead_letters") == 1
    assert rig.sample("rdqc_sink_failing", "dead_letters") == 1
    assert rig.sample("rdqc_sink_failing", "scores") == 0
    ready, body = rig.health.readiness()
    assert not ready
    assert str(body["sinks"]).startswith("dead_letters: MemoryDeadLetterSink")
    assert rig.health.liveness()[0]  # waiting for storage is not being wedged
    assert rig.source.paused
    assert rig.source.commits == []

    rig.checkpoint.write_flush_commit()  # still backing off: not even tried
    assert rig.dead_letters.flush_calls == 1

    rig.clock.now += FIRST_RETRY_S
    rig.checkpoint.write_flush_commit()
    assert rig.sample("rdqc_sink_flush_failures_total", "dead_letters") == 2
    assert rig.sample("rdqc_sink_flush_retries_total", "dead_letters") == 2

    rig.clock.now += 2 * FIRST_RETRY_S
    rig.checkpoint.write_flush_commit()

    assert [r.record for r in rig.dead_letters.rejections] == records  # nothing lost
    assert rig.source.committed() == {TP: 2}
    assert rig.sample("rdqc_sink_failing", "dead_letters") == 0
    assert rig.ready()


def test_the_stall_is_logged_at_error_level_once_not_every_retry() -> None:
    rig = Rig()
    rig.reject(1)
    rig.dead_letters.fail_flushes(8)

    with structlog.testing.capture_logs() as logs:
        for _ in range(8):
            rig.checkpoint.write_flush_commit()
            rig.clock.now += 60

    stalls = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["event"] for entry in stalls] == [
        "partition stalled: dead letters cannot be written; nothing is committed until they are"
    ]
    assert stalls[0]["partitions"] == ["frames.inbound:0"]
    assert stalls[0]["failures"] == 5
    rig.checkpoint.write_flush_commit()
    assert rig.source.committed() == {TP: 1}


def next_attempt_after(rig: Rig) -> float:
    """Move the clock in small steps until the checkpoint flushes again; how long that took."""
    calls, start = rig.dead_letters.flush_calls, rig.clock.now
    while rig.dead_letters.flush_calls == calls:
        rig.clock.now += 0.01
        rig.checkpoint.write_flush_commit()  # returns at once: backing off is not a sleep
    return rig.clock.now - start


def test_the_wait_between_flushes_doubles_with_jitter_up_to_30_s() -> None:
    rig = Rig()
    rig.reject(1)
    rig.dead_letters.fail_flushes(10)
    rig.checkpoint.write_flush_commit()

    for failures in range(1, 10):
        ceiling = min(30.0, FIRST_RETRY_S * 2 ** (failures - 1))
        assert ceiling / 2 <= next_attempt_after(rig) <= ceiling + 0.02


def test_backoff_is_jittered_and_capped() -> None:
    samples = {round(backoff_s(3, 0.5, 30.0), 6) for _ in range(50)}
    assert len(samples) > 1  # workers failing together do not retry together
    assert all(1.0 <= s <= 2.0 for s in samples)
    assert all(15.0 <= backoff_s(n, 0.5, 30.0) <= 30.0 for n in (7, 50, 10_000))


def test_backpressure_is_a_retry_not_a_failure() -> None:
    rig = Rig()
    rig.reject(1)
    rig.dead_letters.backpressure_once(retry_after_s=0.25)

    rig.checkpoint.write_flush_commit()

    assert rig.sample("rdqc_sink_flush_retries_total", "dead_letters") == 1
    assert rig.sample("rdqc_sink_flush_failures_total", "dead_letters") == 0
    assert rig.ready()
    rig.clock.now += 0.25
    rig.checkpoint.write_flush_commit()
    assert rig.source.committed() == {TP: 1}


def test_a_refused_commit_is_logged_counted_and_retried_without_new_frames() -> None:
    rig = Rig()
    rig.reject(3)
    rig.source.fail_commits(1)

    with structlog.testing.capture_logs() as logs:
        rig.checkpoint.write_flush_commit()  # must not raise: the worker carries on

    assert len(rig.dead_letters.rejections) == 3  # flushed: the commit is all that failed
    assert rig.source.committed() == {}
    assert rig.sample("rdqc_commit_failures_total") == 1
    warning = next(entry for entry in logs if entry["event"] == "offset commit failed; will retry")
    assert warning["log_level"] == "warning"
    assert warning["partitions"] == ["frames.inbound:0"]
    assert "injected commit failure" in warning["error"]

    rig.checkpoint.write_flush_commit()  # within the commit's backoff: not retried yet
    assert rig.source.commits == []
    rig.clock.now += FIRST_RETRY_S
    rig.checkpoint.write_flush_commit()  # nothing new to flush; the commit is retried

    assert rig.source.committed() == {TP: 3}
    assert rig.sample("rdqc_commits_total") == 1
    assert len(rig.dead_letters.rejections) == 3  # no second write of the dead letters
