"""Offset tracking: a commit never passes a frame that is not durable yet."""

from __future__ import annotations

import random

import pytest

from worker.frames import SourceRecord, TopicPartition
from worker.pipeline.offsets import OffsetLedger

pytestmark = pytest.mark.unit

TP = TopicPartition("frames", 0)


def rec(offset: int, partition: int = 0) -> SourceRecord:
    return SourceRecord("frames", partition, offset, None, b"x", ())


def test_out_of_order_completion_never_commits_past_an_unfinished_frame() -> None:
    tracker = OffsetLedger()
    records = [rec(o) for o in range(5)]
    for r in records:
        tracker.track(r)
    tracker.done(records[2])
    tracker.done(records[3])
    assert tracker.committable() == {}  # offset 0 is unfinished
    tracker.done(records[0])
    assert tracker.committable() == {TP: 1}  # 1 is unfinished: commit "next read is 1"
    tracker.done(records[1])
    assert tracker.committable() == {TP: 4}
    tracker.done(records[4])
    assert tracker.committable() == {TP: 5}
    assert tracker.pending() == 0


def test_only_partitions_that_moved_since_the_last_commit() -> None:
    tracker = OffsetLedger()
    a, b = rec(0, 0), rec(0, 1)
    tracker.track(a)
    tracker.track(b)
    tracker.done(a)
    tracker.done(b)
    offsets = tracker.committable()
    assert offsets == {TP: 1, TopicPartition("frames", 1): 1}
    tracker.mark_committed(offsets)
    assert tracker.committable() == {}
    tracker.track(rec(1, 0))
    tracker.done(rec(1, 0))
    assert tracker.committable() == {TP: 2}


def test_gaps_in_offsets_are_not_waited_for() -> None:
    """Kafka offsets can skip (compaction, transaction markers)."""
    tracker = OffsetLedger()
    for offset in (3, 7):
        tracker.track(rec(offset))
    tracker.done(rec(3))
    assert tracker.committable() == {TP: 4}
    tracker.done(rec(7))
    assert tracker.committable() == {TP: 8}


def test_revoke_forgets_partitions_and_their_pending_frames() -> None:
    tracker = OffsetLedger()
    for partition in (0, 1):
        for offset in range(3):
            tracker.track(rec(offset, partition))
    tracker.done(rec(0, 1))
    assert tracker.pending() == 5
    tracker.revoke([TopicPartition("frames", 1)])
    assert tracker.pending() == 3
    assert tracker.committable() == {}
    with pytest.raises(KeyError):
        tracker.done(rec(1, 1))
    # Reassigned later, it starts afresh from wherever the source resumes.
    tracker.track(rec(1, 1))
    tracker.done(rec(1, 1))
    assert tracker.committable() == {TopicPartition("frames", 1): 2}


def test_misuse_is_loud() -> None:
    tracker = OffsetLedger()
    tracker.track(rec(5))
    with pytest.raises(ValueError, match="increase"):
        tracker.track(rec(5))
    with pytest.raises(KeyError):
        tracker.done(rec(6))
    tracker.done(rec(5))
    with pytest.raises(KeyError):
        tracker.done(rec(5))


def expected_commit(tracked: list[int], done: set[int]) -> int | None:
    """Brute force: one past the highest offset up to which every tracked offset is done."""
    frontier = None
    for offset in tracked:  # ascending
        if offset not in done:
            break
        frontier = offset + 1
    return frontier


@pytest.mark.parametrize("seed", range(25))
def test_matches_a_brute_force_model_under_random_interleavings(seed: int) -> None:
    rng = random.Random(seed)
    partitions = [TopicPartition("frames", p) for p in range(rng.randint(1, 12))]
    tracker = OffsetLedger()
    tracked: dict[TopicPartition, list[int]] = {tp: [] for tp in partitions}
    done: dict[TopicPartition, set[int]] = {tp: set() for tp in partitions}
    committed: dict[TopicPartition, int] = {}
    for _ in range(400):
        tp = rng.choice(partitions)
        unfinished = [o for o in tracked[tp] if o not in done[tp]]
        if unfinished and rng.random() < 0.5:
            offset = rng.choice(unfinished)
            tracker.done(rec(offset, tp.partition))
            done[tp].add(offset)
        else:
            offset = (tracked[tp][-1] if tracked[tp] else rng.randint(0, 100)) + rng.randint(1, 3)
            tracker.track(rec(offset, tp.partition))
            tracked[tp].append(offset)
        expected = {}
        for p in partitions:
            frontier = expected_commit(tracked[p], done[p])
            if frontier is not None and frontier != committed.get(p):
                expected[p] = frontier
        assert tracker.committable() == expected
        assert tracker.pending() == sum(len(tracked[p]) - len(done[p]) for p in partitions)
        if rng.random() < 0.3:
            tracker.mark_committed(expected)
            committed.update(expected)
