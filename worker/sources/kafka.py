"""Frames from a Kafka topic, read by a consumer group with manual, synchronous commits.

kafka-python 3 drives the group protocol on its own IO thread, and calls the rebalance listener
there while the thread that called ``poll`` (or ``close``) waits for it. The pipeline's callbacks
therefore still run "inside poll" as far as the pipeline can tell, but on the IO thread, where a
blocking consumer call such as ``commit`` is refused. So while a callback runs, ``commit`` only
records the offsets, and the listener (an async one) awaits their commit on the IO loop before
the partitions are given up. Lost partitions (the group already reassigned them) go to the
``on_lost`` callback, and whatever it asks to commit is dropped: the new owner reads those frames
again, which the idempotent sinks absorb.

kafka-python's default assignors rebalance eagerly: every partition is revoked, then the new set
is assigned, and a partition assigned back to the same consumer keeps its fetch position (see
``SubscriptionState.assign_from_subscribed``). ``seek`` moves it back; it only changes the
consumer's local state, so the ``on_assigned`` callback may call it on the IO thread, and
records fetched for the old position are discarded by the fetcher (their fetch offset no
longer matches the position).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import kafka
import kafka.errors
import structlog
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata

from worker.errors import CommitFailed
from worker.frames import SourceRecord, TopicPartition
from worker.kafka_client import KafkaSecurity, client_kwargs
from worker.ports import RebalanceCallback

log = structlog.get_logger(__name__)

KafkaOffsets = dict[kafka.TopicPartition, OffsetAndMetadata]


def _to_kafka(tp: TopicPartition) -> kafka.TopicPartition:
    return kafka.TopicPartition(tp.topic, tp.partition)


def _from_kafka(partitions: set[kafka.TopicPartition]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in partitions}


def _why(exc: kafka.errors.KafkaError, timeout_s: float) -> str:
    if isinstance(exc, kafka.errors.CommitFailedError):
        return f"the group rebalanced and another consumer may own the partitions now ({exc})"
    if isinstance(exc, kafka.errors.KafkaTimeoutError):
        return f"not acknowledged within {timeout_s:g} s ({exc})"
    return f"{type(exc).__name__}: {exc}"


class _RebalanceBridge(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Runs the pipeline's callbacks on the IO thread and commits what they asked to commit."""

    def __init__(
        self,
        source: KafkaFrameSource,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback,
    ) -> None:
        self._source = source
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._capturing_thread: int | None = None
        self._captured: KafkaOffsets = {}

    def capture(self, offsets: KafkaOffsets) -> bool:
        """Keep ``offsets`` for the listener to commit if a callback is running on this thread."""
        with self._lock:
            if self._capturing_thread != threading.get_ident():
                return False
            self._captured.update(offsets)
            return True

    async def on_partitions_assigned(self, assigned: set[kafka.TopicPartition]) -> None:
        # A new assignment starts unpaused; keep the source's paused state across rebalances.
        self._source.pause_if_paused(assigned)
        await self._run(self._on_assigned, assigned, commit=True)

    async def on_partitions_revoked(self, revoked: set[kafka.TopicPartition]) -> None:
        await self._run(self._on_revoked, revoked, commit=True)

    async def on_partitions_lost(self, lost: set[kafka.TopicPartition]) -> None:
        await self._run(self._on_lost, lost, commit=False)

    async def _run(
        self, callback: RebalanceCallback, partitions: set[kafka.TopicPartition], *, commit: bool
    ) -> None:
        with self._lock:
            self._capturing_thread = threading.get_ident()
            self._captured = {}
        try:
            callback(_from_kafka(partitions))
        finally:
            with self._lock:
                self._capturing_thread = None
                offsets, self._captured = self._captured, {}
        if not offsets:
            return
        if not commit:
            log.warning("kafka_commit_skipped_partitions_lost", partitions=len(offsets))
            return
        try:
            await self._source.consumer.commit_async(offsets)
        except kafka.errors.KafkaError as exc:
            # The partitions are leaving either way; their uncommitted frames are redelivered.
            log.warning("kafka_commit_on_rebalance_failed", error=str(exc))


class KafkaFrameSource:
    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        group_id: str,
        client_id: str,
        *,
        max_poll_records: int = 500,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 45_000,
        security: KafkaSecurity | None = None,
        bootstrap_timeout_s: float = 15.0,
        commit_timeout_s: float = 30.0,
        lag_cache_s: float = 5.0,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_partition_fetch_bytes: int = 1024 * 1024,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._group_id = group_id
        self._client_id = client_id
        self._max_poll_records = max_poll_records
        self._max_poll_interval_ms = max_poll_interval_ms
        self._session_timeout_ms = session_timeout_ms
        self._security = security or KafkaSecurity()
        self._bootstrap_timeout_s = bootstrap_timeout_s
        self._commit_timeout_s = commit_timeout_s
        self._lag_cache_s = lag_cache_s
        self._fetch_max_bytes = fetch_max_bytes
        self._max_partition_fetch_bytes = max_partition_fetch_bytes
        self._consumer: KafkaConsumer | None = None
        self._bridge: _RebalanceBridge | None = None
        self._paused = False
        self._lag: dict[TopicPartition, int] = {}
        self._lag_measured_at = float("-inf")

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaFrameSource used before setup()")
        return self._consumer

    def setup(
        self,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        try:
            # The consumer bootstraps in its constructor, so unreachable brokers fail here.
            self._consumer = KafkaConsumer(
                **client_kwargs(self._bootstrap_servers, self._security, client_id=self._client_id),
                group_id=self._group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # A typo in the topic name must not create an empty topic.
                allow_auto_create_topics=False,
                max_poll_records=self._max_poll_records,
                max_poll_interval_ms=self._max_poll_interval_ms,
                session_timeout_ms=self._session_timeout_ms,
                bootstrap_timeout_ms=int(self._bootstrap_timeout_s * 1000),
                # What the consumer buffers besides the pipeline's in-flight budget.
                fetch_max_bytes=self._fetch_max_bytes,
                max_partition_fetch_bytes=self._max_partition_fetch_bytes,
            )
        except kafka.errors.KafkaError as exc:
            raise ConnectionError(
                f"Kafka brokers {self._bootstrap_servers} unreachable within "
                f"{self._bootstrap_timeout_s:g} s (security protocol {self._security.protocol}): "
                f"{exc}"
            ) from exc
        self._bridge = _RebalanceBridge(
            self, on_assigned, on_revoked, on_revoked if on_lost is None else on_lost
        )
        self._consumer.subscribe([self._topic], listener=self._bridge)
        log.info("kafka_source_subscribed", topic=self._topic, group_id=self._group_id)

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            SourceRecord(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                # A tombstone (null value) reaches the pipeline as an empty payload to reject.
                value=record.value if record.value is not None else b"",
                headers=tuple((name, value or b"") for name, value in record.headers),
                timestamp_ms=record.timestamp if record.timestamp >= 0 else None,
            )
            for records in batches.values()
            for record in records
        ]

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        commits = {_to_kafka(tp): OffsetAndMetadata(next_, "", -1) for tp, next_ in offsets.items()}
        if self._bridge is not None and self._bridge.capture(commits):
            return
        try:
            self.consumer.commit(commits, timeout_ms=int(self._commit_timeout_s * 1000))
        except kafka.errors.KafkaError as exc:
            committing = ", ".join(f"{tp.topic}:{tp.partition}@{n}" for tp, n in offsets.items())
            raise CommitFailed(
                f"Kafka commit of {committing} for group {self._group_id} failed: "
                f"{_why(exc, self._commit_timeout_s)}"
            ) from exc

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.consumer.seek(_to_kafka(tp), offset)

    def pause(self) -> None:
        self._paused = True
        self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        self._paused = False
        self.consumer.resume(*self.consumer.assignment())

    def pause_if_paused(self, partitions: set[kafka.TopicPartition]) -> None:
        if self._paused and partitions:
            self.consumer.pause(*partitions)

    def assignment(self) -> set[TopicPartition]:
        return _from_kafka(self.consumer.assignment())

    def lag(self) -> dict[TopicPartition, int]:
        """End offset minus position per assigned partition, measured at most every few seconds.

        Partitions whose position is not known yet (just assigned) are left out.
        """
        now = time.monotonic()
        if now - self._lag_measured_at < self._lag_cache_s:
            return dict(self._lag)
        consumer = self.consumer
        partitions = list(consumer.assignment())
        if not partitions:
            return {}
        timeout_ms = 1000
        lag: dict[TopicPartition, int] = {}
        try:
            for tp, end in consumer.end_offsets(partitions, timeout_ms=timeout_ms).items():
                position = consumer.position(tp, timeout_ms=timeout_ms)
                if position is not None:
                    lag[TopicPartition(tp.topic, tp.partition)] = max(0, end - position)
        except kafka.errors.KafkaError as exc:
            log.warning("kafka_lag_unavailable", error=str(exc))
            return {}
        self._lag, self._lag_measured_at = lag, now
        return dict(lag)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False, timeout_ms=int(self._commit_timeout_s * 1000))
            self._consumer = None
