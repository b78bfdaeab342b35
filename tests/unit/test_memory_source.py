"""MemorySource behaves like kafka-python where the pipeline's delivery depends on it."""

from __future__ import annotations

import pytest

from worker.errors import CommitFailed
from worker.frames import SourceRecord, TopicPartition
from worker.sources.memory import MemorySource

pytestmark = pytest.mark.unit

P0, P1 = TopicPartition("frames.inbound", 0), TopicPartition("frames.inbound", 1)


class Listener:
    def __init__(self, source: MemorySource) -> None:
        self.source = source
        self.events: list[tuple[str, set[TopicPartition]]] = []
        self.commit_on_lost = False
        source.setup(self.assigned, self.revoked, self.lost)

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("assigned", partitions))

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("revoked", partitions))

    def lost(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("lost", partitions))
        if self.commit_on_lost:
            self.source.commit(dict.fromkeys(partitions, 1))


def offsets(records: list[SourceRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def filled(partitions: int = 2, per_partition: int = 3) -> MemorySource:
    source = MemorySource(partitions=partitions)
    for offset in range(per_partition):
        for partition in range(partitions):
            source.append(partition, f"{partition}-{offset}".encode())
    return source


def test_a_partition_assigned_back_keeps_its_position_a_new_one_starts_at_the_commit() -> None:
    source = filled()
    listener = Listener(source)
    assert offsets(source.poll(0, 2)) == [(0, 0), (0, 1)]
    source.commit({P0: 1, P1: 0})
    source.rebalance([0])  # partition 1 goes to another consumer...
    source.rebalance([0, 1])  # ...and comes back
    # Partition 0 was never given up: it resumes at its position (2), not its commit (1).
    assert offsets(source.poll(0, 10)) == [(0, 2), (1, 0), (1, 1), (1, 2)]
    assert listener.events == [
        ("assigned", {P0, P1}),
        ("revoked", {P0, P1}),
        ("assigned", {P0}),
        ("revoked", {P0}),
        ("assigned", {P0, P1}),
    ]


def test_seek_moves_the_position_of_an_assigned_partition() -> None:
    source = filled(partitions=1)
    Listener(source)
    source.poll(0, 10)
    source.seek(P0, 1)
    assert offsets(source.poll(0, 10)) == [(0, 1), (0, 2)]
    with pytest.raises(ValueError, match="not assigned"):
        source.seek(P1, 0)


def test_lost_partitions_forget_their_position_and_refuse_commits() -> None:
    source = filled(partitions=1)
    listener = Listener(source)
    source.poll(0, 2)
    source.commit({P0: 1})
    listener.commit_on_lost = True
    source.lose()
    with pytest.raises(CommitFailed, match="lost"):
        source.poll(0, 10)


def test_lost_partitions_restart_from_the_committed_offset() -> None:
    source = filled(partitions=1)
    listener = Listener(source)
    source.poll(0, 3)
    source.commit({P0: 1})
    source.lose()
    assert offsets(source.poll(0, 10)) == [(0, 1), (0, 2)]
    assert ("lost", {P0}) in listener.events


def test_close_revokes_what_is_assigned() -> None:
    source = filled(partitions=1)
    listener = Listener(source)
    source.poll(0, 1)
    source.close()
    assert listener.events[-1] == ("revoked", {P0})
    assert source.assignment() == set()
