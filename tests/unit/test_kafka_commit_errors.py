"""KafkaFrameSource.commit raises CommitFailed, naming what failed, for any Kafka error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kafka.errors
import pytest

import worker.sources.kafka as kafka_source
from worker.errors import CommitFailed
from worker.frames import TopicPartition
from worker.sources.kafka import KafkaFrameSource

pytestmark = pytest.mark.unit

OFFSETS = {TopicPartition("frames.inbound", 3): 42}


@dataclass
class RefusingConsumer:
    """Stands in for KafkaConsumer: keeps its settings, and every commit raises ``error``."""

    error: Exception = field(default_factory=kafka.errors.KafkaError)
    settings: dict[str, Any] = field(default_factory=dict)

    def create(self, **settings: Any) -> RefusingConsumer:
        self.settings = settings
        return self

    def subscribe(self, topics: list[str], listener: object) -> None:
        pass

    def commit(self, offsets: object, timeout_ms: int) -> None:
        raise self.error


@pytest.fixture
def consumer() -> RefusingConsumer:
    return RefusingConsumer()


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch, consumer: RefusingConsumer) -> KafkaFrameSource:
    monkeypatch.setattr(kafka_source, "KafkaConsumer", consumer.create)
    source = KafkaFrameSource(
        "broker:9092",
        "frames.inbound",
        "rdqc-workers",
        "w-1",
        commit_timeout_s=7,
        fetch_max_bytes=8 << 20,
        max_partition_fetch_bytes=2 << 20,
    )
    source.setup(lambda _: None, lambda _: None)
    return source


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (kafka.errors.CommitFailedError("generation 4 is stale"), "the group rebalanced"),
        (kafka.errors.KafkaTimeoutError("timed out"), "not acknowledged within 7 s"),
        (kafka.errors.NodeNotReadyError("node 1"), "NodeNotReadyError"),
    ],
)
def test_kafka_commit_errors_become_commit_failed(
    source: KafkaFrameSource, consumer: RefusingConsumer, error: Exception, why: str
) -> None:
    consumer.error = error
    with pytest.raises(CommitFailed, match=why) as raised:
        source.commit(OFFSETS)
    assert "frames.inbound:3@42" in str(raised.value)
    assert "rdqc-workers" in str(raised.value)
    assert raised.value.__cause__ is error


def test_the_fetch_sizes_reach_the_consumer(
    source: KafkaFrameSource, consumer: RefusingConsumer
) -> None:
    assert consumer.settings["fetch_max_bytes"] == 8 << 20
    assert consumer.settings["max_partition_fetch_bytes"] == 2 << 20
