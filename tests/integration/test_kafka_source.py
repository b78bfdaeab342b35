"""KafkaFrameSource and KafkaDeadLetterSink against a real Kafka (KRaft)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from stack_endpoints import StackEndpoints

from worker.frames import Rejection, SourceRecord, TopicPartition
from worker.observability.prometheus import Metrics
from worker.pipeline.offsets import OffsetLedger
from worker.sinks.kafka_dead_letters import KafkaDeadLetterSink
from worker.sources.kafka import KafkaFrameSource

pytestmark = pytest.mark.integration

RECORDS = 12


class Rebalances:
    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.revoked: list[set[TopicPartition]] = []

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self.assigned = set(partitions)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(set(partitions))


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for index in range(start, start + count):
        producer.send(
            topic,
            key=f"cam-{index % 3}".encode(),
            value=f"frame-{index}".encode(),
            headers=[("product_line", b"p1"), ("frame_id", f"f-{index}".encode())],
        )
    producer.flush()
    producer.close()


def source_for(bootstrap: str, topic: str, group: str) -> KafkaFrameSource:
    return KafkaFrameSource(
        bootstrap,
        topic,
        group_id=group,
        client_id=f"test-{uuid.uuid4().hex[:6]}",
        session_timeout_ms=10_000,
        max_poll_interval_ms=30_000,
        lag_cache_s=0,
    )


def poll_until(source: KafkaFrameSource, count: int, timeout_s: float = 30.0) -> list[SourceRecord]:
    records: list[SourceRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records += source.poll(timeout_s=0.5, max_records=count - len(records))
    return records


def next_offsets(records: list[SourceRecord]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        offsets[record.tp] = max(offsets.get(record.tp, 0), record.offset + 1)
    return offsets


@pytest.fixture
def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"


def read_dlq(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = KafkaTopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    batches = consumer.poll(timeout_ms=10_000)
    consumer.close()
    return [record for records in batches.values() for record in records]


@pytest.fixture
def dlq_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    name = f"rdqc-test-dlq-{uuid.uuid4().hex}"
    kafka_admin.create_topics(
        {name: {"num_partitions": 1, "replication_factor": 1}},
        timeout_ms=30_000,
        wait_for_metadata=True,
    )
    yield name
    kafka_admin.delete_topics([name], timeout_ms=30_000)


def test_polls_records_and_a_new_consumer_resumes_after_the_commit(
    stack: StackEndpoints, kafka_topic: str, group: str
) -> None:
    produce(stack.kafka_bootstrap, kafka_topic, RECORDS)
    source = source_for(stack.kafka_bootstrap, kafka_topic, group)
    rebalances = Rebalances()
    source.setup(rebalances.on_assigned, rebalances.on_revoked)

    records = poll_until(source, RECORDS)

    assert len(records) == RECORDS
    assert rebalances.assigned == {TopicPartition(kafka_topic, p) for p in range(4)}
    assert source.assignment() == rebalances.assigned
    by_frame = {record.header("frame_id"): record for record in records}
    first = by_frame["f-0"]
    assert first.topic == kafka_topic
    assert first.key == b"cam-0"
    assert first.value == b"frame-0"
    assert first.headers == (("product_line", b"p1"), ("frame_id", b"f-0"))
    assert first.timestamp_ms is not None and first.timestamp_ms > 0
    assert sum(source.lag().values()) == 0

    # Commit the first two records of each partition; close must commit nothing more.
    committed_part = [r for r in records if r.offset < 2]
    source.commit(next_offsets(committed_part))
    source.close()

    resumed = source_for(stack.kafka_bootstrap, kafka_topic, group)
    resumed.setup(lambda _: None, lambda _: None)
    again = poll_until(resumed, RECORDS - len(committed_part))
    assert resumed.poll(timeout_s=1.0, max_records=RECORDS) == []
    resumed.close()

    expected = {(r.partition, r.offset) for r in records} - {
        (r.partition, r.offset) for r in committed_part
    }
    assert {(r.partition, r.offset) for r in again} == expected


def test_pause_holds_records_back_and_lag_counts_them(
    stack: StackEndpoints, kafka_topic: str, group: str
) -> None:
    source = source_for(stack.kafka_bootstrap, kafka_topic, group)
    source.setup(lambda _: None, lambda _: None)
    deadline = time.monotonic() + 20.0
    while not source.assignment() and time.monotonic() < deadline:
        assert source.poll(timeout_s=0.2, max_records=1) == []  # joining, nothing to read yet
    source.pause()
    produce(stack.kafka_bootstrap, kafka_topic, RECORDS)

    assert poll_until(source, 1, timeout_s=1.0) == []
    assert sum(source.lag().values()) == RECORDS

    source.resume()
    assert len(poll_until(source, RECORDS)) == RECORDS
    source.close()


def test_a_rebalance_commits_what_the_revoke_callback_flushes_and_commits(
    stack: StackEndpoints,
    kafka_topic: str,
    dlq_topic: str,
    group: str,
    kafka_admin: KafkaAdminClient,
) -> None:
    """Like the pipeline, on_revoked flushes the sinks and commits; kafka-python 3 runs it on
    its IO thread, where a blocking consumer call is refused."""
    produce(stack.kafka_bootstrap, kafka_topic, RECORDS)
    first = source_for(stack.kafka_bootstrap, kafka_topic, group)
    dead_letters = KafkaDeadLetterSink(stack.kafka_bootstrap, dlq_topic, worker_id="w-1")
    dead_letters.setup()
    processed: list[SourceRecord] = []
    revokes: list[set[TopicPartition]] = []

    def flush_and_commit(revoked: set[TopicPartition]) -> None:
        revokes.append(revoked)
        dead_letters.flush()
        first.commit({tp: n for tp, n in next_offsets(processed).items() if tp in revoked})

    first.setup(lambda _: None, flush_and_commit)
    processed += poll_until(first, RECORDS)
    assert len(processed) == RECORDS
    dead_letters.add(Rejection(processed[0], "undecodable", "ImageReadError", "bad"))

    # The first consumer keeps polling in the background so it takes part in the rebalance.
    stop = threading.Event()

    def keep_polling() -> None:
        while not stop.is_set():
            first.poll(timeout_s=0.2, max_records=10)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        second = source_for(stack.kafka_bootstrap, kafka_topic, group)
        second.setup(lambda _: None, lambda _: None)
        stolen: list[SourceRecord] = []
        deadline = time.monotonic() + 20.0
        while not second.assignment() and time.monotonic() < deadline:
            stolen += second.poll(timeout_s=0.5, max_records=RECORDS)
        assert second.assignment(), "the second consumer never got partitions"
        stolen += second.poll(timeout_s=1.0, max_records=RECORDS)
    finally:
        stop.set()
        poller.join()

    assert revokes, "the first consumer's partitions were never revoked"
    assert stolen == []  # everything the first one processed was committed on revoke
    assert len(read_dlq(stack.kafka_bootstrap, dlq_topic)) == 1
    committed = kafka_admin.list_group_offsets({group: None})[group]
    assert {tp.partition: meta.offset for tp, meta in committed.items()} == {
        tp.partition: offset for tp, offset in next_offsets(processed).items()
    }
    second.close()
    first.close()
    dead_letters.close()


PER_PARTITION = 40  # more than the first reads: kafka-python holds the rest fetched


class InFlight:
    """The pipeline's rebalance handling around a real source: ledger, commit on revoke, seek.

    Records go into ``read[assignment][partition]``, by the assignment they were polled under.
    The callbacks run on kafka-python's IO thread while ``poll_once`` waits in ``poll``.
    """

    def __init__(self, source: KafkaFrameSource) -> None:
        self.source = source
        self.metrics = Metrics()
        self.ledger = OffsetLedger(self.metrics)
        self.assignments: list[set[TopicPartition]] = []
        self.revokes = 0
        self.seeks: list[dict[TopicPartition, int]] = []
        self.read: list[dict[int, list[int]]] = []
        source.setup(self.on_assigned, self.on_revoked, self.ledger.lose)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self.assignments.append(set(partitions))
        self.read.append({})
        seeks = self.ledger.assign(partitions)
        for tp, offset in seeks.items():
            self.source.seek(tp, offset)
        self.seeks.append(seeks)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revokes += 1
        offsets = {tp: n for tp, n in self.ledger.committable().items() if tp in partitions}
        self.source.commit(offsets)
        self.ledger.mark_committed(offsets)
        self.ledger.revoke(partitions)

    def poll_once(self) -> list[SourceRecord]:
        records = self.source.poll(timeout_s=0.2, max_records=2)  # fetched ones stay buffered
        for record in records:
            self.read[-1].setdefault(record.partition, []).append(record.offset)
            self.ledger.track(record)
        return records

    def gaps(self) -> float:
        return sum(
            sample.value
            for metric in self.metrics.offset_gaps.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )


def produce_per_partition(bootstrap: str, topic: str, partitions: int, count: int) -> None:
    """One record batch per record, so a small fetch returns only a few of them."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for index in range(count):
        for partition in range(partitions):
            value = f"p{partition}-{index}".encode()
            producer.send(topic, value=value, partition=partition).get(timeout=10)
    producer.close()


def test_a_partition_assigned_back_is_read_again_from_its_first_unfinished_record(
    stack: StackEndpoints, kafka_topic: str, group: str
) -> None:
    """Eager rebalances keep the fetch position of a partition assigned back to the same
    consumer; the seek in on_assigned must move it back, and the records kafka-python fetched
    for the old position (held while the consumer is paused) must not come out."""
    produce_per_partition(stack.kafka_bootstrap, kafka_topic, 4, PER_PARTITION)
    # Small fetches: every partition has fetches under way or buffered at the old position.
    first = InFlight(
        KafkaFrameSource(
            stack.kafka_bootstrap,
            kafka_topic,
            group_id=group,
            client_id=f"test-{uuid.uuid4().hex[:6]}",
            session_timeout_ms=10_000,
            max_poll_interval_ms=30_000,
            max_partition_fetch_bytes=256,
        )
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        len(first.read[-1] if first.read else {}) < 4
        or min(len(offsets) for offsets in first.read[-1].values()) < 3
    ):
        first.poll_once()
    assert first.read and all(len(o) >= 3 for o in first.read[-1].values()), first.read
    # Offsets 0 and 2 of every partition are done, 1 is still in flight.
    tracked = first.read[-1]
    for partition in tracked:
        for offset in (0, 2):
            first.ledger.done(SourceRecord(kafka_topic, partition, offset, None, b"", ()))
    assert set(first.ledger.committable().values()) == {1}
    # Paused, the first consumer reads nothing more until it has every partition back, and
    # keeps what it fetched for the old positions.
    first.source.pause()
    all_back = {TopicPartition(kafka_topic, p) for p in range(4)}
    stop, second_left = threading.Event(), threading.Event()

    def keep_polling() -> None:  # the first consumer takes part in the rebalances
        while not stop.is_set():
            if second_left.is_set() and first.assignments[-1] == all_back:
                first.source.resume()
            first.poll_once()

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        second = source_for(stack.kafka_bootstrap, kafka_topic, group)
        second.setup(lambda _: None, lambda _: None)
        deadline = time.monotonic() + 30
        while not second.assignment() and time.monotonic() < deadline:
            second.poll(timeout_s=0.5, max_records=PER_PARTITION)
        assert second.assignment(), "the second consumer never got partitions"
        second.close()  # leaves: the first gets every partition back
        second_left.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(first.assignments) >= 3
            and first.assignments[-1] == all_back
            and all(len(first.read[-1].get(p, [])) == PER_PARTITION - 1 for p in range(4))
        ):
            time.sleep(0.1)
    finally:
        stop.set()
        poller.join()
    first.source.close()

    # The assignment while the second consumer was there (an empty or full one may come first).
    middle = next(i for i, a in enumerate(first.assignments) if a and a != all_back)
    kept = first.assignments[middle]
    assert first.seeks[middle] == dict.fromkeys(kept, 1)
    assert first.read[middle] == {}  # paused
    # Back after the second left: those kept are sought to 1 again; the others start from their
    # committed offset (1), as new partitions do (or are sought there too, if yet another
    # rebalance came after).
    assert kept <= first.seeks[-1].keys() and set(first.seeks[-1].values()) == {1}
    # Nothing skipped, nothing from the old position: every partition again from offset 1.
    assert first.read[-1] == {p: list(range(1, PER_PARTITION)) for p in range(4)}
    assert first.gaps() == 0


def test_a_consumer_stalled_past_max_poll_interval_loses_its_partitions_and_commits_nothing(
    stack: StackEndpoints, kafka_topic: str, group: str, kafka_admin: KafkaAdminClient
) -> None:
    produce(stack.kafka_bootstrap, kafka_topic, RECORDS)
    source = KafkaFrameSource(
        stack.kafka_bootstrap,
        kafka_topic,
        group_id=group,
        client_id=f"test-{uuid.uuid4().hex[:6]}",
        session_timeout_ms=6_000,
        max_poll_interval_ms=2_000,
    )
    events: list[tuple[str, set[TopicPartition]]] = []

    def lost(partitions: set[TopicPartition]) -> None:
        events.append(("lost", partitions))
        source.commit(dict.fromkeys(partitions, 5))  # too late: the group moved on

    source.setup(
        lambda p: events.append(("assigned", p)), lambda p: events.append(("revoked", p)), lost
    )
    records = poll_until(source, RECORDS)
    assert len(records) == RECORDS
    time.sleep(4)  # no poll for twice max_poll_interval: the consumer leaves the group
    deadline = time.monotonic() + 20
    while not any(kind == "lost" for kind, _ in events) and time.monotonic() < deadline:
        source.poll(timeout_s=0.5, max_records=RECORDS)
    source.close()

    assert ("lost", {TopicPartition(kafka_topic, p) for p in range(4)}) in events
    # The first join revokes an empty assignment; then the partitions are lost, not revoked.
    assert [kind for kind, partitions in events if partitions][:2] == ["assigned", "lost"]
    assert kafka_admin.list_group_offsets({group: None})[group] == {}


def test_unreachable_brokers_fail_setup_early() -> None:
    source = KafkaFrameSource("127.0.0.1:1", "frames.inbound", "g", "c", bootstrap_timeout_s=1.0)
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1 unreachable"):
        source.setup(lambda _: None, lambda _: None)


def test_dead_letters_keep_the_original_record_and_add_error_headers(
    stack: StackEndpoints, dlq_topic: str
) -> None:
    original = SourceRecord(
        "frames.inbound",
        3,
        1234,
        b"cam-07",
        b"\xff\xd8 broken jpeg",
        (("product_line", b"p1"), ("frame_id", b"cam-07-000123")),
    )
    sink = KafkaDeadLetterSink(stack.kafka_bootstrap, dlq_topic, worker_id="rdqc-0-1")
    sink.setup()
    sink.add(Rejection(original, "undecodable", "ImageReadError", "not a decodable image"))
    sink.flush()
    sink.close()

    [record] = read_dlq(stack.kafka_bootstrap, dlq_topic)
    assert record.key == b"cam-07"
    assert record.value == b"\xff\xd8 broken jpeg"
    assert record.headers == [
        ("product_line", b"p1"),
        ("frame_id", b"cam-07-000123"),
        ("rdqc.error.class", b"ImageReadError"),
        ("rdqc.error.reason", b"undecodable"),
        ("rdqc.error.message", b"not a decodable image"),
        ("rdqc.source.topic", b"frames.inbound"),
        ("rdqc.source.partition", b"3"),
        ("rdqc.source.offset", b"1234"),
        ("rdqc.worker_id", b"rdqc-0-1"),
    ]
