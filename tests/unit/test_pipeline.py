"""The whole loop with in-memory backends and a real tiny model.

What must hold whatever happens: every good frame is scored exactly once, bad frames reach the
dead letters with their reason, and a commit never passes a frame that is not durable yet
(``AuditedSource`` checks the sinks at every commit).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from pipeline_harness import (
    FAST,
    Harness,
    commits_per_partition,
    frame_id,
    loaded_model,
    noise_png,
    scored_ids,
)

from rdcore import ReverseDistillation
from worker.frames import TopicPartition
from worker.modelstore.memory import MemoryModelStore

pytestmark = pytest.mark.unit


def test_good_frames_scored_once_bad_ones_dead_lettered_commits_reach_the_end(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore(
        {
            "caps": loaded_model(module, "caps", "c1", threshold),
            "bolts": loaded_model(module, "bolts", "b1", threshold),
        }
    )
    harness = Harness(store)
    good, bad = [], {}
    for i in range(12):
        good.append(harness.add(i % 2, "caps" if i % 3 else "bolts", noise_png(i % 8)))
        if i % 4 == 0:  # interleave bad frames with good ones
            kind = i // 4
            cases = [
                (None, noise_png(1), "missing_product_line"),
                ("caps", b"\x89PNG garbage", "undecodable"),
                ("nope", noise_png(2), "unknown_product_line"),
            ]
            line, payload, reason = cases[kind]
            bad[frame_id(harness.add(kind % 2, line, payload))] = reason
    for line, payload, reason in [
        ("caps", b"", "empty_payload"),
        ("caps", noise_png(4, (8, 8)), "bad_dimensions"),
    ]:
        bad[frame_id(harness.add(1, line, payload))] = reason

    with harness.running():
        harness.wait_for(harness.all_committed)

    assert scored_ids(harness) == sorted(frame_id(r) for r in good)  # each exactly once
    assert {frame_id(r.record): r.reason for r in harness.dead_letters.rejections} == bad
    results = harness.scores.results
    assert {r.model_version for r in results} == {"c1", "b1"}
    assert all(r.worker_id == "test-worker" and r.threshold == threshold for r in results)
    assert any(r.is_anomaly for r in results) and not all(r.is_anomaly for r in results)
    for result in results:
        assert result.is_anomaly == (result.raw_score >= result.threshold)
        if result.is_anomaly:  # heatmaps_for=flagged; the URI names a stored object
            assert result.heatmap_uri in harness.heatmaps.objects
        else:
            assert result.heatmap_uri == ""
    for sequence in commits_per_partition(harness.source).values():
        assert sequence == sorted(set(sequence))  # only forward
    assert harness.source.pause_count >= 1  # max_queue 8 < 17 frames: intake paused
    assert harness.source.closed and harness.scores.closed and harness.scores.is_set_up


def test_a_failing_flush_loses_nothing_and_commits_nothing_until_it_succeeds(
    module: ReverseDistillation, threshold: float
) -> None:
    harness = Harness(MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)}))
    harness.scores.fail_flushes(3)
    harness.dead_letters.fail_flushes(1)
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(6)]
    rejected = harness.add(0, None, noise_png(0))

    with harness.running():
        harness.wait_for(harness.all_committed)

    assert harness.scores.failed_flushes == 3
    assert scored_ids(harness) == sorted(frame_id(r) for r in records)
    assert [r.record for r in harness.dead_letters.rejections] == [rejected]
    # AuditedSource checked every commit against what the sinks had made durable.
    assert harness.source.commits


def test_backpressure_pauses_intake_then_retries(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store, config=replace(FAST, max_queue=64), heatmaps_for="all")
    harness.heatmaps.backpressure_once(retry_after_s=0.05)
    records = [harness.add(0, "caps", noise_png(i)) for i in range(5)]

    with harness.running():
        harness.wait_for(harness.all_committed)

    assert harness.source.pause_count == 1
    assert scored_ids(harness) == sorted(frame_id(r) for r in records)
    assert all(r.heatmap_uri in harness.heatmaps.objects for r in harness.scores.results)


def test_a_model_hot_swap_is_picked_up(module: ReverseDistillation, threshold: float) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store)
    before = [harness.add(0, "caps", noise_png(i)) for i in range(4)]
    with harness.running():
        harness.wait_for(lambda: len(harness.scores.results) == 4)
        store.publish("caps", loaded_model(module, "caps", "v2", threshold * 2))
        harness.wait_for(lambda: store.versions() == {"caps": "v2"})  # the pipeline refreshed
        after = [harness.add(1, "caps", noise_png(i)) for i in range(4)]
        harness.wait_for(harness.all_committed)

    by_id = {r.meta.frame_id: r for r in harness.scores.results}
    assert {by_id[frame_id(r)].model_version for r in before} == {"v1"}
    assert {by_id[frame_id(r)].model_version for r in after} == {"v2"}
    assert {by_id[frame_id(r)].threshold for r in after} == {threshold * 2}


def test_stop_drains_in_flight_frames_and_commits_them(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    # Batches would wait 60 s to fill: only the shutdown drain can send these frames to the model.
    harness = Harness(store, config=replace(FAST, max_batch_size=32, max_wait_s=60, max_queue=64))
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(5)]
    with harness.running():
        harness.wait_for(
            lambda: len(harness.source.lag()) == 2 and not any(harness.source.lag().values())
        )
        assert harness.scores.results == []
    assert scored_ids(harness) == sorted(frame_id(r) for r in records)
    assert harness.all_committed()


def test_past_the_grace_period_unfinished_work_stays_uncommitted(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store, config=replace(FAST, shutdown_grace_s=0.3))
    harness.scores.fail_flushes(1_000_000)
    harness.add(0, "caps", noise_png(0))
    started = time.monotonic()
    with harness.running() as stop:
        harness.wait_for(lambda: harness.scores.failed_flushes > 0)
        stop.set()
    assert time.monotonic() - started < 5
    assert harness.source.commits == []
    assert harness.source.closed


def test_revoked_partitions_are_flushed_committed_and_forgotten(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store)
    first = [harness.add(i % 2, "caps", noise_png(i)) for i in range(8)]
    with harness.running():
        harness.wait_for(lambda: len(harness.scores.results) >= 2)
        harness.source.rebalance()  # another worker joins and leaves: both come back
        second = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]
        harness.wait_for(harness.all_committed)
        commits = len(harness.source.commits)
        harness.source.rebalance([1])  # and partition 0 goes to another worker
        gone = harness.add(0, "caps", noise_png(9))
        harness.wait_for(lambda: len(harness.source.assignment()) == 1)
        time.sleep(0.2)

    assert Counter(scored_ids(harness)) == Counter(frame_id(r) for r in first + second)
    assert frame_id(gone) not in scored_ids(harness)
    p0 = TopicPartition("frames.inbound", 0)
    assert all(p0 not in commit for commit in harness.source.commits[commits:])


def test_frames_in_flight_of_a_partition_that_comes_back_are_read_again_once(
    module: ReverseDistillation, threshold: float
) -> None:
    """kafka-python keeps the fetch position of a partition revoked and assigned back to the
    same consumer, past the frames dropped at the revoke: they must be read again."""
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    # Frames wait in the batcher (60 s) until the shutdown drain.
    harness = Harness(store, config=replace(FAST, max_batch_size=32, max_wait_s=60, max_queue=64))
    records = [harness.add(1, "caps", noise_png(i)) for i in range(3)]

    def polled() -> bool:
        lag = harness.source.lag()
        return len(lag) == 2 and not any(lag.values())

    with harness.running():
        harness.wait_for(polled)
        harness.source.rebalance()  # both partitions revoked, then assigned back
        harness.wait_for(lambda: harness.source.rebalance_count == 1 and polled())
        assert harness.scores.results == []

    assert scored_ids(harness) == sorted(frame_id(r) for r in records)  # once each
    assert harness.all_committed()


def test_lost_partitions_commit_nothing_and_restart_from_the_committed_offset(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store, config=replace(FAST, max_queue=64))
    # Scored frames wait for the retry of a flush when the partitions are lost. MemorySource
    # refuses commits of lost partitions, as Kafka does: a pipeline that flushed and committed
    # them in on_lost would fail the run.
    harness.scores.backpressure_once(retry_after_s=1.0)
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]
    with harness.running():
        harness.wait_for(lambda: harness.scores.failed_flushes == 1)
        harness.source.lose()
        harness.wait_for(harness.all_committed)
    # Read again from the committed offsets: at least once, and the stale copies written too.
    assert set(scored_ids(harness)) == {frame_id(r) for r in records}
    assert harness.source.seeks == []  # kafka-python forgot the positions: nothing to rewind


def test_a_frame_larger_than_the_memory_budget_is_still_processed_one_at_a_time(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store, config=replace(FAST, max_inflight_bytes=1, max_queue=64))
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(6)]
    with harness.running():
        harness.wait_for(harness.all_committed)
    assert scored_ids(harness) == sorted(frame_id(r) for r in records)
    assert harness.source.most_outstanding == 1


def test_the_memory_budget_bounds_the_frames_in_flight(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    payloads = [noise_png(i, (256, 256)) for i in range(24)]
    # What one frame holds: payload, RGB pixels, and its 64x64 float32 model input.
    frame_bytes = max(map(len, payloads)) + 256 * 256 * 3 + 3 * 64 * 64 * 4
    config = replace(FAST, max_inflight_bytes=4 * frame_bytes, max_queue=64, max_batch_size=8)
    harness = Harness(store, config=config)
    records = [harness.add(i % 2, "caps", payload) for i, payload in enumerate(payloads)]
    with harness.running():
        harness.wait_for(harness.all_committed)
    assert scored_ids(harness) == sorted(frame_id(r) for r in records)
    assert 1 < harness.source.most_outstanding <= 4


def random_traffic(harness: Harness, rng: random.Random, disturb: Callable[[], None]) -> None:
    """Bursts of good and bad frames of two product lines, disturbed at random points."""
    for _ in range(10):
        for _ in range(rng.randint(1, 6)):
            partition = rng.randrange(harness.partitions)
            if rng.random() < 0.1:
                harness.add(partition, "caps", b"\x89PNG garbage")
            else:
                line = rng.choice(["caps", "bolts"])
                harness.add(partition, line, noise_png(rng.randrange(8)))
        time.sleep(rng.uniform(0, 0.04))
        if rng.random() < 0.7:
            disturb()


def two_lines(module: ReverseDistillation, threshold: float) -> MemoryModelStore:
    return MemoryModelStore(
        {
            "caps": loaded_model(module, "caps", "c1", threshold),
            "bolts": loaded_model(module, "bolts", "b1", threshold),
        }
    )


def all_records(harness: Harness) -> tuple[set[str], set[str]]:
    """The frame ids of the good and of the bad records appended."""
    good, bad = set(), set()
    for tp, end in harness.source.end_offsets().items():
        for offset in range(end):
            record_id = f"{tp.topic}:{tp.partition}:{offset}"
            is_bad = harness.source.record(tp, offset).value.startswith(b"\x89PNG garbage")
            (bad if is_bad else good).add(record_id)
    return good, bad


@pytest.mark.parametrize("seed", range(3))
def test_partitions_coming_back_at_random_points_score_every_frame_exactly_once(
    module: ReverseDistillation, threshold: float, seed: int
) -> None:
    rng = random.Random(seed)
    config = replace(FAST, max_queue=16, max_wait_s=rng.choice([0.0, 0.01, 0.05]))
    harness = Harness(two_lines(module, threshold), config=config, partitions=3)
    with harness.running():
        random_traffic(harness, rng, harness.source.rebalance)
        harness.wait_for(harness.all_committed)

    good, bad = all_records(harness)
    assert harness.source.rebalance_count >= 3
    assert Counter(scored_ids(harness)) == Counter(good)  # each exactly once
    assert Counter(frame_id(r.record) for r in harness.dead_letters.rejections) == Counter(bad)


@pytest.mark.parametrize("seed", range(3))
def test_partitions_moving_lost_and_failing_flushes_lose_no_frame(
    module: ReverseDistillation, threshold: float, seed: int
) -> None:
    rng = random.Random(seed)
    harness = Harness(
        two_lines(module, threshold), config=replace(FAST, max_queue=16), partitions=3
    )

    def disturb() -> None:
        choice = rng.random()
        if choice < 0.4:
            kept = [p for p in range(harness.partitions) if rng.random() < 0.6]
            harness.source.rebalance(kept)  # the others go to another worker, or come back
        elif choice < 0.6:
            harness.source.lose(range(harness.partitions))
        elif choice < 0.8:
            harness.source.rebalance(range(harness.partitions))
        else:
            harness.scores.fail_flushes(rng.randint(1, 2))

    with harness.running():
        random_traffic(harness, rng, disturb)
        harness.source.rebalance(range(harness.partitions))
        harness.wait_for(harness.all_committed)

    good, bad = all_records(harness)
    # At least once; AuditedSource checked that no commit passed a frame not yet durable.
    assert set(scored_ids(harness)) == good
    assert {frame_id(r.record) for r in harness.dead_letters.rejections} == bad
