"""An in-memory frame source with Kafka's semantics, for tests and demos.

Records live in per-partition lists; each partition has a read position and a committed offset.
Assignment happens inside ``poll``, as with Kafka, and so do simulated rebalances: ``revoke``
takes partitions away on the next poll and, with ``reassign``, gives them back from their last
committed offset, so uncommitted frames are redelivered as a new owner would see them.
Records may be appended from another thread while the pipeline polls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from worker.errors import CommitFailed
from worker.frames import SourceRecord, TopicPartition
from worker.ports import RebalanceCallback


def _ignore(_: set[TopicPartition]) -> None:
    """No rebalance listener before ``setup``."""


class MemorySource:
    def __init__(self, topic: str = "frames.inbound", partitions: int = 1) -> None:
        self.topic = topic
        self._records: dict[TopicPartition, list[SourceRecord]] = {
            TopicPartition(topic, p): [] for p in range(partitions)
        }
        self._position = dict.fromkeys(self._records, 0)
        self._committed: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._to_revoke: list[tuple[set[TopicPartition], bool]] = []
        self._joined = False
        self._on_assigned: RebalanceCallback = _ignore
        self._on_revoked: RebalanceCallback = _ignore
        self._changed = threading.Condition()
        self.commits: list[dict[TopicPartition, int]] = []
        self.commit_failures_left = 0
        self.paused = False
        self.pause_count = 0
        self.revocations = 0
        self.closed = False

    # -- what tests do -------------------------------------------------------------------

    def append(
        self,
        partition: int,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] = (),
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> SourceRecord:
        tp = TopicPartition(self.topic, partition)
        with self._changed:
            log = self._records[tp]
            record = SourceRecord(
                self.topic, partition, len(log), key, value, tuple(headers), timestamp_ms
            )
            log.append(record)
            self._changed.notify_all()
        return record

    def revoke(self, partitions: Iterable[int], reassign: bool = False) -> None:
        """On the next poll: revoke these partitions, then give them back if ``reassign``."""
        tps = {TopicPartition(self.topic, p) for p in partitions}
        with self._changed:
            self._to_revoke.append((tps, reassign))
            self._changed.notify_all()

    def committed(self) -> dict[TopicPartition, int]:
        with self._changed:
            return dict(self._committed)

    def end_offsets(self) -> dict[TopicPartition, int]:
        with self._changed:
            return {tp: len(log) for tp, log in self._records.items()}

    def fail_commits(self, count: int) -> None:
        """The next ``count`` commits raise CommitFailed and commit nothing, as Kafka's may."""
        with self._changed:
            self.commit_failures_left = count

    # -- FrameSource ---------------------------------------------------------------------

    def setup(self, on_assigned: RebalanceCallback, on_revoked: RebalanceCallback) -> None:
        self._on_assigned, self._on_revoked = on_assigned, on_revoked

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        self._rebalance()
        with self._changed:
            if self.paused or not self._available():
                self._changed.wait(timeout_s)
            if self.paused:
                return []
            batch: list[SourceRecord] = []
            for tp in sorted(self._assigned):
                start = self._position[tp]
                taken = self._records[tp][start : start + max_records - len(batch)]
                self._position[tp] = start + len(taken)
                batch += taken
            return batch

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self._changed:
            if self.commit_failures_left:
                self.commit_failures_left -= 1
                raise CommitFailed(f"injected commit failure for {sorted(offsets)}")
            unowned = set(offsets) - self._assigned
            if unowned:
                raise ValueError(f"commit for partitions not assigned: {sorted(unowned)}")
            self.commits.append(dict(offsets))
            self._committed.update(offsets)

    def pause(self) -> None:
        with self._changed:
            if not self.paused:
                self.pause_count += 1
            self.paused = True

    def resume(self) -> None:
        with self._changed:
            self.paused = False
            self._changed.notify_all()

    def assignment(self) -> set[TopicPartition]:
        with self._changed:
            return set(self._assigned)

    def lag(self) -> dict[TopicPartition, int]:
        with self._changed:
            return {tp: len(self._records[tp]) - self._position[tp] for tp in self._assigned}

    def close(self) -> None:
        self.closed = True

    # -- rebalancing, run inside poll like Kafka's listener callbacks --------------------

    def _available(self) -> bool:
        return any(self._position[tp] < len(self._records[tp]) for tp in self._assigned)

    def _rebalance(self) -> None:
        if not self._joined:
            self._joined = True
            self._assign(set(self._records))
        while True:
            with self._changed:
                if not self._to_revoke:
                    return
                tps, reassign = self._to_revoke.pop(0)
            revoked = tps & self._assigned
            self._on_revoked(revoked)
            with self._changed:
                self._assigned -= revoked
                self.revocations += 1
            if reassign:
                self._assign(revoked)

    def _assign(self, tps: set[TopicPartition]) -> None:
        with self._changed:
            for tp in tps:
                self._position[tp] = self._committed.get(tp, 0)
            self._assigned |= tps
        self._on_assigned(tps)
