"""Micro-batching per product line: a batch closes when full or once its first frame waited enough.

A batch holds frames of one product line only, because each product line has its own model.
``max_wait_s`` bounds the latency a quiet product line adds; ``max_size`` bounds the batch the
model sees. Used by the pipeline's loop thread only, so it has no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class HasProductLine(Protocol):
    @property
    def product_line(self) -> str: ...


T = TypeVar("T", bound=HasProductLine)


@dataclass
class Batch(Generic[T]):
    product_line: str
    frames: list[T]


@dataclass
class _Open(Generic[T]):
    started_at: float
    frames: list[T] = field(default_factory=list)


class MicroBatcher(Generic[T]):
    def __init__(
        self, max_size: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_size < 1 or max_wait_s < 0:
            raise ValueError(
                f"need max_size >= 1 and max_wait_s >= 0, got {max_size}, {max_wait_s}"
            )
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._open: dict[str, _Open[T]] = {}
        self._full: list[Batch[T]] = []
        self._count = 0

    def __len__(self) -> int:
        """Frames held, in open and full batches."""
        return self._count

    def add(self, frame: T) -> None:
        line = frame.product_line
        batch = self._open.get(line)
        if batch is None:
            batch = self._open[line] = _Open(self._clock())
        batch.frames.append(frame)
        self._count += 1
        if len(batch.frames) >= self._max_size:
            del self._open[line]
            self._full.append(Batch(line, batch.frames))

    def ready(self, now: float | None = None) -> list[Batch[T]]:
        """Batches that are full or whose first frame has waited ``max_wait_s``, oldest first."""
        now = self._clock() if now is None else now
        expired = [
            line for line, batch in self._open.items() if now - batch.started_at >= self._max_wait_s
        ]
        ready, self._full = self._full, []
        ready += [Batch(line, self._open.pop(line).frames) for line in expired]
        self._count -= sum(len(batch.frames) for batch in ready)
        return ready

    def drain(self) -> list[Batch[T]]:
        """Every frame held, as batches (shutdown: nothing is left behind)."""
        drained = self._full + [Batch(line, b.frames) for line, b in self._open.items()]
        self._full, self._open, self._count = [], {}, 0
        return drained

    def next_deadline(self) -> float | None:
        """The clock time at which ``ready`` will next return a batch; None when empty."""
        if self._full:
            return self._clock()
        if not self._open:
            return None
        return min(batch.started_at for batch in self._open.values()) + self._max_wait_s
