"""The units of work that move between the stages, from poll to commit.

Every polled record gets a ``Ticket``; what becomes of the record carries it along, so the
offset ledger can tell at any stage whether the frame is still ours (``OffsetLedger.is_stale``).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from worker.frames import Rejection, RejectReason, SourceRecord, TopicPartition
from worker.pipeline.batching import Batch
from worker.scoring import Prepared, Scored


@dataclass(frozen=True)
class Ticket:
    """A polled record, with its partition's epoch at poll time and when it was polled."""

    record: SourceRecord
    epoch: int
    polled_at: float


@dataclass(frozen=True)
class InFlightFrame:
    """A decoded frame waiting for, or in, an inference batch."""

    ticket: Ticket
    prepared: Prepared

    @property
    def product_line(self) -> str:
        return self.prepared.product_line


@dataclass(frozen=True)
class RejectOutput:
    """A record bound for the dead letters."""

    ticket: Ticket
    rejection: Rejection


@dataclass(frozen=True)
class ScoreOutput:
    """A scored frame bound for the score sink, with its heatmap when one is wanted."""

    ticket: Ticket
    scored: Scored
    scored_at_ms: int
    heatmap: Future[bytes] | None  # the PNG being rendered on the CPU pool


Output = RejectOutput | ScoreOutput


def reject(ticket: Ticket, reason: RejectReason, exc: Exception) -> RejectOutput:
    """The frame goes to the dead letters, with the class and message of ``exc``."""
    return RejectOutput(ticket, Rejection(ticket.record, reason, type(exc).__name__, str(exc)))


def reject_all(batch: Batch[InFlightFrame], reason: RejectReason, exc: Exception) -> list[Output]:
    return [reject(frame.ticket, reason, exc) for frame in batch.frames]


def log_fields(record: SourceRecord) -> dict[str, object]:
    """The fields that locate a frame in per-frame log events."""
    return {
        "frame_id": record.frame_id_or_position(":"),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }


def partition_names(partitions: Iterable[TopicPartition]) -> list[str]:
    """The partitions of a rebalance log event, sorted."""
    return [f"{tp.topic}:{tp.partition}" for tp in sorted(partitions)]
