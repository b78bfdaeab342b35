"""Micro-batching: batches close when full or after max_wait, one product line each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from worker.pipeline.batching import MicroBatcher

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Item:
    product_line: str
    n: int


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_closes_when_full_without_waiting() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Item] = MicroBatcher(3, 10.0, clock)
    for n in range(4):
        batcher.add(Item("caps", n))
    (batch,) = batcher.ready()
    assert batch.product_line == "caps"
    assert [item.n for item in batch.frames] == [0, 1, 2]
    assert len(batcher) == 1  # the fourth frame opened the next batch
    assert batcher.ready() == []


def test_a_batch_closes_when_its_first_frame_waited_max_wait() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Item] = MicroBatcher(32, 0.25, clock)
    assert batcher.next_deadline() is None
    batcher.add(Item("caps", 0))
    clock.now += 0.125
    batcher.add(Item("caps", 1))
    assert batcher.next_deadline() == 100.25
    assert batcher.ready() == []
    clock.now += 0.125
    (batch,) = batcher.ready()
    assert [item.n for item in batch.frames] == [0, 1]
    assert len(batcher) == 0
    assert batcher.next_deadline() is None


def test_product_lines_are_batched_separately() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Item] = MicroBatcher(2, 0.25, clock)
    batcher.add(Item("caps", 0))
    batcher.add(Item("bolts", 1))
    batcher.add(Item("caps", 2))
    (full,) = batcher.ready()
    assert (full.product_line, [i.n for i in full.frames]) == ("caps", [0, 2])
    clock.now += 0.25
    (waited,) = batcher.ready(clock.now)
    assert (waited.product_line, [i.n for i in waited.frames]) == ("bolts", [1])


def test_a_full_batch_is_due_now() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Item] = MicroBatcher(1, 5.0, clock)
    batcher.add(Item("caps", 0))
    assert batcher.next_deadline() == clock.now


def test_drain_returns_everything() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Item] = MicroBatcher(2, 60.0, clock)
    for n, line in enumerate(["caps", "caps", "caps", "bolts"]):
        batcher.add(Item(line, n))
    batches = batcher.drain()
    assert sorted(i.n for b in batches for i in b.frames) == [0, 1, 2, 3]
    assert all(len({i.product_line for i in b.frames}) == 1 for b in batches)
    assert len(batcher) == 0
    assert batcher.drain() == []
