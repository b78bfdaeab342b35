"""The worker's three sinks, set up, flushed and closed in one place, in the contract's order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.ports import DeadLetterSink, HeatmapSink, ScoreSink


class _Sink(Protocol):
    def setup(self) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Outputs:
    """Dead letters, scores and heatmaps. Called by the pipeline's loop thread only.

    Flushed heatmaps first: a score's ``heatmap_uri`` must name a stored object
    (docs/contracts.md §3), so the heatmaps are durable before the scores that point at them.
    A flush that raises stops there; the sinks keep their buffers for the retry.
    """

    dead_letters: DeadLetterSink
    scores: ScoreSink
    heatmaps: HeatmapSink

    def setup(self) -> None:
        # Dead letters first, heatmaps last, as the worker has always connected them.
        for sink in reversed(self._in_flush_order()):
            sink.setup()

    def flush(self) -> None:
        for sink in self._in_flush_order():
            sink.flush()

    def close(self) -> None:
        for sink in self._in_flush_order():
            sink.close()

    def _in_flush_order(self) -> tuple[_Sink, ...]:
        return (self.heatmaps, self.scores, self.dead_letters)
