"""The offset ledger: which offsets are safe to commit, which frames are no longer ours, where a
partition that comes back must resume, and how many bytes the frames in flight hold.

Frames of one partition are polled in offset order but finish out of order: each product line
has its own batches, and a batch may wait for a sink. A partition's commit point is the lowest
offset still unfinished: everything before it is durable, so committing it never skips a frame.
Offsets are tracked in poll order, so each partition keeps a deque; finishing is O(1) and the
commit point advances by popping the finished prefix (amortized O(1) per frame).

Each polled record gets a ``Ticket`` stamped with its partition's epoch. A revoked partition
bumps its epoch, which makes the tickets of its frames still in flight stale, so every stage
drops them wherever they are found.

Partitions that come back: kafka-python's rebalances are eager (every partition is revoked,
then the new set assigned), and a partition assigned back to the same consumer keeps its fetch
position, which is past the frames dropped at the revoke. So ``revoke`` remembers where each
partition must resume (its first unfinished record) and which later offsets are durable already;
``assign`` returns the resume offsets of the partitions that came back, for the pipeline to
seek the source there, and forgets the others: a partition that was assigned elsewhere in
between starts from its committed offset like any new one. A re-read record whose effects are
durable already is not processed again (``track`` returns None).

A partition resumed at a known offset must deliver that offset first. If its first record is
later, records were skipped: the gap is logged as an error, counted, and the partition's commit
point is held at the resume offset, so the next reader of the partition reads them again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from worker.frames import SourceRecord, TopicPartition
from worker.observability.prometheus import Metrics
from worker.pipeline.work import Ticket

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Resume:
    offset: int | None  # where reading must resume; None: the source's position is right
    durable: frozenset[int]  # offsets past it whose effects are durable already


@dataclass
class _Partition:
    order: deque[int] = field(default_factory=deque)  # tracked, not yet passed by the frontier
    unfinished: dict[int, int] = field(default_factory=dict)  # offset -> bytes its frame holds
    last_tracked: int | None = None
    frontier: int | None = None  # one past the last offset of the finished prefix
    committed: int | None = None
    resumed_at: int | None = None  # the source was sought here: the first record must be here
    durable: set[int] = field(default_factory=set)  # to skip when read again
    gap_at: int | None = None  # records were skipped from here: commits stop here

    def commit_point(self) -> int | None:
        if self.frontier is None or self.gap_at is None:
            return self.frontier
        return min(self.frontier, self.gap_at)

    def resume(self) -> _Resume | None:
        if self.gap_at is not None:
            offset: int | None = self.gap_at
        elif self.order:
            offset = self.order[0]  # the first unfinished record
        elif self.last_tracked is None:
            offset = self.resumed_at  # came back and read nothing since
        else:
            offset = None  # everything read is durable
        durable = self.durable | {o for o in self.order if o not in self.unfinished}
        if offset is not None:
            durable = {o for o in durable if o >= offset}
        if offset is None and not durable:
            return None
        return _Resume(offset, frozenset(durable))


class OffsetLedger:
    """Used by the pipeline's loop thread only, so it has no lock."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._resumes: dict[TopicPartition, _Resume] = {}
        self._pending = 0
        self._held_bytes = 0

    def track(self, record: SourceRecord) -> Ticket | None:
        """A record was polled: its ticket, or None when its effects are durable already.

        Offsets of a partition must increase call to call.
        """
        tp, offset = record.tp, record.offset
        state = self._partitions.setdefault(tp, _Partition())
        if state.last_tracked is not None and offset <= state.last_tracked:
            raise ValueError(
                f"{tp}: offset {offset} tracked after {state.last_tracked}; "
                "offsets must increase within a partition"
            )
        if state.last_tracked is None and state.resumed_at is not None:
            self._check_resumed(tp, state.resumed_at, offset, state)
        state.last_tracked = offset
        state.order.append(offset)
        if offset in state.durable:
            state.durable.discard(offset)
            self._advance(state)
            return None
        state.unfinished[offset] = len(record.value)
        self._pending += 1
        self._held_bytes += len(record.value)
        return Ticket(record, self._epochs.get(tp, 0), self._clock())

    def hold(self, ticket: Ticket, nbytes: int) -> None:
        """The ticket's frame now holds ``nbytes`` (payload, decoded image, model input)."""
        state = self._partitions.get(ticket.record.tp)
        offset = ticket.record.offset
        if self.is_stale(ticket) or state is None or offset not in state.unfinished:
            return
        self._held_bytes += nbytes - state.unfinished[offset]
        state.unfinished[offset] = nbytes

    def is_stale(self, ticket: Ticket) -> bool:
        """Its partition was revoked after it was polled: another worker owns it now."""
        return ticket.epoch != self._epochs.get(ticket.record.tp, 0)

    def done(self, record: SourceRecord) -> None:
        """The record's effects are durable (scored and written, or dead-lettered)."""
        state = self._partitions.get(record.tp)
        if state is None or record.offset not in state.unfinished:
            raise KeyError(f"{record.tp} offset {record.offset} is not tracked as unfinished")
        self._held_bytes -= state.unfinished.pop(record.offset)
        self._pending -= 1
        self._advance(state)

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset to commit; only those that moved since last committed."""
        points = {tp: state.commit_point() for tp, state in self._partitions.items()}
        return {
            tp: point
            for tp, point in points.items()
            if point is not None and point != self._partitions[tp].committed
        }

    def mark_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.committed = offset

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions were revoked: drop their frames in flight, remember where to resume."""
        for tp in partitions:
            state = self._forget(tp)
            resume = None if state is None else state.resume()
            if resume is not None:
                self._resumes[tp] = resume

    def lose(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions went to another consumer unannounced: drop their frames in flight."""
        for tp in partitions:
            self._forget(tp)
            self._resumes.pop(tp, None)

    def assign(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """A new assignment: the offsets to seek the partitions that came back to.

        Remembered resume points of partitions not in it are forgotten: the group gave them to
        another consumer, so they start from their committed offset if they come back later.
        """
        resumes, self._resumes = self._resumes, {}
        seeks: dict[TopicPartition, int] = {}
        for tp in partitions:
            resume = resumes.get(tp)
            if resume is None:
                continue
            state = self._partitions.setdefault(tp, _Partition())
            state.resumed_at, state.durable = resume.offset, set(resume.durable)
            if resume.offset is not None:
                seeks[tp] = resume.offset
        return seeks

    def pending(self) -> int:
        """Frames tracked and not yet done, over all partitions."""
        return self._pending

    def held_bytes(self) -> int:
        """Bytes held by the frames tracked and not yet done (see ``hold``)."""
        return self._held_bytes

    def _forget(self, tp: TopicPartition) -> _Partition | None:
        self._epochs[tp] = self._epochs.get(tp, 0) + 1
        state = self._partitions.pop(tp, None)
        if state is not None:
            self._pending -= len(state.unfinished)
            self._held_bytes -= sum(state.unfinished.values())
        return state

    def _check_resumed(
        self, tp: TopicPartition, resumed_at: int, offset: int, state: _Partition
    ) -> None:
        """``offset`` is the first record read since the partition was sought to ``resumed_at``."""
        if offset <= resumed_at:
            return
        state.gap_at = resumed_at
        self._metrics.offset_gaps.labels(tp.topic, str(tp.partition)).inc()
        log.error(
            "records skipped: the source resumed past the first unfinished offset; "
            "commits of this partition stop there",
            topic=tp.topic,
            partition=tp.partition,
            resumed_at=resumed_at,
            first_offset=offset,
        )

    @staticmethod
    def _advance(state: _Partition) -> None:
        while state.order and state.order[0] not in state.unfinished:
            state.frontier = state.order.popleft() + 1
