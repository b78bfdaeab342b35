"""Offset tracking: a commit never passes a frame that is not durable yet."""

from __future__ import annotations

import random

import pytest

from worker.frames import SourceRecord, TopicPartition
from worker.observability.prometheus import Metrics
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.work import Ticket

pytestmark = pytest.mark.unit

TP = TopicPartition("frames", 0)


def rec(offset: int, partition: int = 0, value: bytes = b"x") -> SourceRecord:
    return SourceRecord("frames", partition, offset, None, value, ())


def ticket(ledger: OffsetLedger, record: SourceRecord) -> Ticket:
    tracked = ledger.track(record)
    assert tracked is not None
    return tracked


def gaps(metrics: Metrics, partition: int = 0) -> float:
    value = metrics.registry.get_sample_value(
        "rdqc_offset_gaps_total", {"topic": "frames", "partition": str(partition)}
    )
    return value or 0.0


def test_out_of_order_completion_never_commits_past_an_unfinished_frame() -> None:
    tracker = OffsetLedger(Metrics())
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
    tracker = OffsetLedger(Metrics())
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
    tracker = OffsetLedger(Metrics())
    for offset in (3, 7):
        tracker.track(rec(offset))
    tracker.done(rec(3))
    assert tracker.committable() == {TP: 4}
    tracker.done(rec(7))
    assert tracker.committable() == {TP: 8}


def test_revoke_forgets_partitions_and_their_pending_frames() -> None:
    tracker = OffsetLedger(Metrics())
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
    # Assigned elsewhere in between, then back: it starts afresh from the committed offset.
    assert tracker.assign([TopicPartition("frames", 0)]) == {}
    assert tracker.assign([TopicPartition("frames", 1)]) == {}
    tracker.track(rec(1, 1))
    tracker.done(rec(1, 1))
    assert tracker.committable() == {TopicPartition("frames", 1): 2}


def test_misuse_is_loud() -> None:
    tracker = OffsetLedger(Metrics())
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
    tracker = OffsetLedger(Metrics())
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


P1 = TopicPartition("frames", 1)


def test_a_partition_that_comes_back_resumes_at_its_first_unfinished_record() -> None:
    ledger = OffsetLedger(Metrics())
    for offset in range(6):
        ledger.track(rec(offset))
    for offset in (0, 1, 3, 4):  # 2 and 5 are still in flight at the revoke
        ledger.done(rec(offset))
    ledger.mark_committed(ledger.committable())  # 2
    ledger.revoke([TP])
    assert ledger.pending() == 0

    assert ledger.assign([TP, P1]) == {TP: 2}  # the consumer kept its position at 6
    assert ledger.track(rec(2)) is not None
    # 3 and 4 were made durable before the revoke: read again, they are not processed again.
    assert ledger.track(rec(3)) is None
    assert ledger.track(rec(4)) is None
    assert ledger.track(rec(5)) is not None
    assert ledger.pending() == 2
    ledger.done(rec(2))
    assert ledger.committable() == {TP: 5}
    ledger.done(rec(5))
    assert ledger.committable() == {TP: 6}


def test_resume_points_last_one_assignment_and_lost_partitions_have_none() -> None:
    ledger = OffsetLedger(Metrics())
    for partition in (0, 1):
        ledger.track(rec(0, partition))
    ledger.revoke([TP, P1])
    ledger.assign([P1])  # partition 0 went to another consumer
    assert ledger.assign([TP]) == {}  # back later: from its committed offset, no seek

    ledger.track(rec(0, 1))
    ledger.revoke([P1])
    ledger.lose([P1])  # kafka-python drops a lost partition's position: no seek
    assert ledger.assign([P1]) == {}


def test_a_partition_revoked_again_before_reading_keeps_its_resume_point() -> None:
    ledger = OffsetLedger(Metrics())
    for offset in range(3):
        ledger.track(rec(offset))
    ledger.done(rec(1))
    ledger.revoke([TP])
    assert ledger.assign([TP]) == {TP: 0}
    ledger.revoke([TP])  # nothing read since the seek
    assert ledger.assign([TP]) == {TP: 0}
    ledger.track(rec(0))
    assert ledger.track(rec(1)) is None  # still known to be durable


def test_no_seek_when_everything_read_is_durable() -> None:
    """The consumer's position is right; seeking to last + 1 could land on a control record."""
    ledger = OffsetLedger(Metrics())
    for offset in (0, 1):
        ledger.track(rec(offset))
        ledger.done(rec(offset))
    ledger.revoke([TP])
    assert ledger.assign([TP]) == {}


def test_records_skipped_after_a_resume_are_loud_and_never_committed_past() -> None:
    metrics = Metrics()
    ledger = OffsetLedger(metrics)
    for offset in range(4):
        ledger.track(rec(offset))
    ledger.done(rec(0))
    ledger.revoke([TP])
    assert ledger.assign([TP]) == {TP: 1}

    ledger.track(rec(3))  # the source resumed past 1 and 2
    ledger.done(rec(3))
    assert gaps(metrics) == 1
    assert ledger.committable() == {TP: 1}  # not 4: 1 and 2 were never processed
    ledger.track(rec(4))
    ledger.done(rec(4))
    assert ledger.committable() == {TP: 1}
    ledger.revoke([TP])
    assert ledger.assign([TP]) == {TP: 1}  # read again from the gap


def test_a_resume_at_or_before_the_resume_point_is_no_gap() -> None:
    metrics = Metrics()
    ledger = OffsetLedger(metrics)
    ledger.track(rec(5))
    ledger.revoke([TP])
    ledger.assign([TP])
    ledger.track(rec(5))
    assert gaps(metrics) == 0


def test_held_bytes_follow_each_frame_until_done_or_dropped() -> None:
    ledger = OffsetLedger(Metrics())
    a = ticket(ledger, rec(0, value=b"a" * 10))
    b = ticket(ledger, rec(0, 1, value=b"b" * 20))
    assert ledger.held_bytes() == 30
    ledger.hold(a, 1000)  # decoded
    assert ledger.held_bytes() == 1020
    ledger.done(a.record)
    assert ledger.held_bytes() == 20
    ledger.revoke([P1])
    assert ledger.held_bytes() == 0
    ledger.hold(b, 5000)  # its decode finished after the revoke: stale, not held
    assert ledger.held_bytes() == 0


@pytest.mark.parametrize("seed", range(30))
def test_a_partition_that_keeps_coming_back_has_every_record_done_exactly_once(
    seed: int,
) -> None:
    """A consumer with kafka-python's positions: kept across a revoke, moved by a seek."""
    rng = random.Random(seed)
    metrics = Metrics()
    log = sorted(rng.sample(range(300), 120))  # gaps, as control records leave
    ledger = OffsetLedger(metrics)
    position, committed = 0, 0  # index into log; committed offset
    in_flight: dict[int, Ticket] = {}
    done: list[int] = []

    def read(count: int) -> None:
        nonlocal position
        for offset in log[position : position + count]:
            tracked = ledger.track(rec(offset))
            if tracked is not None:
                in_flight[offset] = tracked
        position = min(len(log), position + count)

    def finish(offset: int) -> None:
        ledger.done(in_flight.pop(offset).record)
        done.append(offset)

    def commit() -> None:
        nonlocal committed
        offsets = ledger.committable()
        if TP in offsets:
            assert set(o for o in log if o < offsets[TP]) <= set(done)
            committed = offsets[TP]
        ledger.mark_committed(offsets)

    for _ in range(400):
        action = rng.random()
        if action < 0.4:
            read(rng.randint(1, 4))
        elif action < 0.75 and in_flight:
            finish(rng.choice(list(in_flight)))
        elif action < 0.9:
            commit()
        else:
            commit()  # the revoke callback commits first
            ledger.revoke([TP])
            in_flight.clear()
            for offset in ledger.assign([TP]).values():
                position = next(i for i, o in enumerate(log) if o >= offset)
    while position < len(log) or in_flight:
        read(4)
        for offset in list(in_flight):
            finish(offset)
    commit()

    assert sorted(done) == log  # every record, once
    assert committed == log[-1] + 1
    assert gaps(metrics) == 0
