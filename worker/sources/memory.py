"""An in-memory frame source with kafka-python's semantics where they matter, for tests and demos.

Records live in per-partition lists; each assigned partition has a fetch position, and the group
a committed offset per partition. Assignment happens inside ``poll``, as with Kafka, and so do
simulated rebalances, which are eager like kafka-python's default assignors: ``rebalance``
revokes every assigned partition, then assigns the new set. As in kafka-python, a partition
assigned back to the same consumer keeps its fetch position (past frames polled and not
finished), while a partition new to the consumer starts from the committed offset. ``lose``
takes the partitions away without a revoke (the group moved on without this member): their
positions are forgotten. ``close`` revokes what is assigned, like ``KafkaConsumer.close``.
Records may be appended from another thread while the pipeline polls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.errors import CommitFailed
from worker.frames import SourceRecord, TopicPartition
from worker.ports import RebalanceCallback


def _ignore(_: set[TopicPartition]) -> None:
    """No rebalance listener before ``setup``."""


@dataclass(frozen=True)
class _Rebalance:
    assignment: frozenset[TopicPartition]
    lost: bool  # the partitions are lost, not revoked: no callback may commit for them


class MemorySource:
    def __init__(self, topic: str = "frames.inbound", partitions: int = 1) -> None:
        self.topic = topic
        self._records: dict[TopicPartition, list[SourceRecord]] = {
            TopicPartition(topic, p): [] for p in range(partitions)
        }
        self._position: dict[TopicPartition, int] = {}  # of assigned partitions only
        self._committed: dict[TopicPartition, int] = {}
        self._rebalances: list[_Rebalance] = []
        self._losing: set[TopicPartition] = set()  # while the on_lost callback runs
        self._joined = False
        self._on_assigned: RebalanceCallback = _ignore
        self._on_revoked: RebalanceCallback = _ignore
        self._on_lost: RebalanceCallback = _ignore
        self._changed = threading.Condition()
        self.commits: list[dict[TopicPartition, int]] = []
        self.commit_failures_left = 0
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.paused = False
        self.pause_count = 0
        self.rebalance_count = 0
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

    def rebalance(self, assignment: Iterable[int] | None = None) -> None:
        """On the next poll: revoke every assigned partition, then assign ``assignment``.

        None assigns the partitions assigned now again (as when another member joins and
        leaves between two polls).
        """
        self._queue(assignment, lost=False)

    def lose(self, assignment: Iterable[int] | None = None) -> None:
        """On the next poll: lose every assigned partition, then assign ``assignment``."""
        self._queue(assignment, lost=True)

    def record(self, tp: TopicPartition, offset: int) -> SourceRecord:
        with self._changed:
            return self._records[tp][offset]

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

    def setup(
        self,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        self._on_lost = on_revoked if on_lost is None else on_lost

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        self._rebalance()
        with self._changed:
            if self.paused or not self._available():
                self._changed.wait(timeout_s)
            if self.paused:
                return []
            batch: list[SourceRecord] = []
            for tp in sorted(self._position):
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
            unowned = set(offsets) - set(self._position)
            if unowned:
                raise ValueError(f"commit for partitions not assigned: {sorted(unowned)}")
            if self._losing & set(offsets):
                raise CommitFailed(f"commit for lost partitions: {sorted(self._losing)}")
            self.commits.append(dict(offsets))
            self._committed.update(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with self._changed:
            if tp not in self._position:
                raise ValueError(f"seek on {tp}, which is not assigned")
            self._position[tp] = offset
            self.seeks.append((tp, offset))
            self._changed.notify_all()

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
            return set(self._position)

    def lag(self) -> dict[TopicPartition, int]:
        with self._changed:
            return {tp: len(self._records[tp]) - pos for tp, pos in self._position.items()}

    def close(self) -> None:
        revoked = self.assignment()
        if revoked:
            self._on_revoked(revoked)
        with self._changed:
            self._position.clear()
        self.closed = True

    # -- rebalancing, run inside poll like Kafka's listener callbacks --------------------

    def _queue(self, assignment: Iterable[int] | None, *, lost: bool) -> None:
        with self._changed:
            tps = self._position.keys() if assignment is None else self._partitions(assignment)
            self._rebalances.append(_Rebalance(frozenset(tps), lost))
            self._changed.notify_all()

    def _partitions(self, numbers: Iterable[int]) -> set[TopicPartition]:
        return {TopicPartition(self.topic, p) for p in numbers}

    def _available(self) -> bool:
        return any(pos < len(self._records[tp]) for tp, pos in self._position.items())

    def _rebalance(self) -> None:
        if not self._joined:
            self._joined = True
            self._assign(set(self._records))
        while True:
            with self._changed:
                if not self._rebalances:
                    return
                rebalance = self._rebalances.pop(0)
                owned = set(self._position)
            if rebalance.lost:
                with self._changed:
                    self._losing = owned
                if owned:
                    self._on_lost(owned)
                with self._changed:
                    self._losing = set()
                    self._position.clear()  # kafka-python forgets lost partitions' positions
            else:
                self._on_revoked(owned)
            with self._changed:
                self.rebalance_count += 1
            self._assign(set(rebalance.assignment))

    def _assign(self, tps: set[TopicPartition]) -> None:
        with self._changed:
            for tp in set(self._position) - tps:
                del self._position[tp]
            for tp in tps - set(self._position):
                self._position[tp] = self._committed.get(tp, 0)
        self._on_assigned(tps)
