"""The worker's three sinks, set up, flushed and closed in one place, in the contract's order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from worker.errors import SinkBackpressure, SinkError
from worker.ports import DeadLetterSink, HeatmapSink, ScoreSink

SinkName = Literal["heatmaps", "scores", "dead_letters"]


class SinkFailure(SinkError):
    """A sink's SinkError or SinkBackpressure, with the sink's name (``heatmaps``, ``scores`` or
    ``dead_letters``). ``retry_after_s`` is the sink's wish when it pushed back, else None."""

    def __init__(self, sink: SinkName, cause: SinkError | SinkBackpressure) -> None:
        super().__init__(f"{sink}: {cause}")
        self.sink: SinkName = sink
        self.cause = cause
        self.retry_after_s = cause.retry_after_s if isinstance(cause, SinkBackpressure) else None


@contextmanager
def blaming(sink: SinkName) -> Iterator[None]:
    """Re-raise a SinkError or SinkBackpressure from inside as a SinkFailure of ``sink``."""
    try:
        yield
    except SinkFailure:
        raise
    except (SinkError, SinkBackpressure) as exc:
        raise SinkFailure(sink, exc) from exc


class _Sink(Protocol):
    def setup(self) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Outputs:
    """Dead letters, scores and heatmaps. Called by the pipeline's loop thread only.

    Flushed heatmaps first: a score's ``heatmap_uri`` must name a stored object
    (docs/contracts.md §3), so the heatmaps are durable before the scores that point at them.
    A flush that raises stops there, as a SinkFailure naming the sink; the sinks keep their
    buffers for the retry.
    """

    dead_letters: DeadLetterSink
    scores: ScoreSink
    heatmaps: HeatmapSink

    def setup(self) -> None:
        # Dead letters first, heatmaps last, as the worker has always connected them.
        for _, sink in reversed(self._in_flush_order()):
            sink.setup()

    def flush(self) -> None:
        for name, sink in self._in_flush_order():
            with blaming(name):
                sink.flush()

    def close(self) -> None:
        for _, sink in self._in_flush_order():
            sink.close()

    def _in_flush_order(self) -> tuple[tuple[SinkName, _Sink], ...]:
        return (
            ("heatmaps", self.heatmaps),
            ("scores", self.scores),
            ("dead_letters", self.dead_letters),
        )
