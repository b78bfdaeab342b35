"""Pausing the source: intake stops while too many frames are in flight or a sink backs off.

A paused source keeps its partitions and keeps serving rebalances; polls just return nothing, so
memory stays bounded by ``max_queue`` and a struggling sink is not handed more work.
"""

from __future__ import annotations

from worker.ports import FrameSource


class Pausing:
    """Called by the pipeline's loop thread only: it calls the source."""

    def __init__(self, source: FrameSource, max_queue: int) -> None:
        self._source = source
        self._max_queue = max_queue
        self._paused = False

    def pause(self) -> None:
        """A sink just failed: stop intake at once, not at the next ``update``."""
        self._set(True)

    def update(self, in_flight: int, backing_off: bool) -> None:
        """Paused exactly while the queue is full or a sink flush waits for its retry."""
        self._set(in_flight >= self._max_queue or backing_off)

    def _set(self, paused: bool) -> None:
        if paused != self._paused:
            (self._source.pause if paused else self._source.resume)()
            self._paused = paused
