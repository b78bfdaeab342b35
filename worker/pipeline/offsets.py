"""The offset ledger: which offsets are safe to commit, and which frames are no longer ours.

Frames of one partition are polled in offset order but finish out of order: each product line
has its own batches, and a batch may wait for a sink. A partition's commit point is the lowest
offset still unfinished: everything before it is durable, so committing it never skips a frame.
Offsets are tracked in poll order, so each partition keeps a deque; finishing is O(1) and the
commit point advances by popping the finished prefix (amortized O(1) per frame).

Each polled record gets a ``Ticket`` stamped with its partition's epoch. A revoked partition
bumps its epoch, which makes the tickets of its frames still in flight stale: another worker
owns them now, so every stage drops them wherever they are found.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from worker.frames import SourceRecord, TopicPartition
from worker.pipeline.work import Ticket


@dataclass
class _Partition:
    order: deque[int] = field(default_factory=deque)  # tracked, not yet passed by the frontier
    unfinished: set[int] = field(default_factory=set)
    last_tracked: int | None = None
    frontier: int | None = None  # one past the last offset of the finished prefix
    committed: int | None = None


class OffsetLedger:
    """Used by the pipeline's loop thread only, so it has no lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._pending = 0

    def track(self, record: SourceRecord) -> Ticket:
        """A record was polled: its ticket. Offsets of a partition must increase call to call."""
        state = self._partitions.setdefault(record.tp, _Partition())
        if state.last_tracked is not None and record.offset <= state.last_tracked:
            raise ValueError(
                f"{record.tp}: offset {record.offset} tracked after {state.last_tracked}; "
                "offsets must increase within a partition"
            )
        state.last_tracked = record.offset
        state.order.append(record.offset)
        state.unfinished.add(record.offset)
        self._pending += 1
        return Ticket(record, self._epochs.get(record.tp, 0), self._clock())

    def is_stale(self, ticket: Ticket) -> bool:
        """Its partition was revoked after it was polled: another worker owns it now."""
        return ticket.epoch != self._epochs.get(ticket.record.tp, 0)

    def done(self, record: SourceRecord) -> None:
        """The record's effects are durable (scored and written, or dead-lettered)."""
        state = self._partitions.get(record.tp)
        if state is None or record.offset not in state.unfinished:
            raise KeyError(f"{record.tp} offset {record.offset} is not tracked as unfinished")
        state.unfinished.remove(record.offset)
        self._pending -= 1
        while state.order and state.order[0] not in state.unfinished:
            state.frontier = state.order.popleft() + 1

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset to commit; only those that moved since last committed."""
        return {
            tp: state.frontier
            for tp, state in self._partitions.items()
            if state.frontier is not None and state.frontier != state.committed
        }

    def mark_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.committed = offset

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions that went to another consumer; their frames will be redelivered."""
        for tp in partitions:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
            state = self._partitions.pop(tp, None)
            if state is not None:
                self._pending -= len(state.unfinished)

    def pending(self) -> int:
        """Frames tracked and not yet done, over all partitions."""
        return self._pending
