"""The checkpoint: finished frames become durable in order, and only then are offsets committed.

``write_flush_commit`` makes one attempt, in this order:

1. Write: add finished outputs to the sinks in the order they were added here. A score whose
   heatmap is still rendering holds back everything after it; stale outputs are dropped. An
   ``add`` that raises leaves its output first in line.
2. Flush the sinks: heatmaps, then scores, then dead letters (``Outputs.flush``), so a score's
   ``heatmap_uri`` always names a stored object (docs/contracts.md §3).
3. Back off on failure: if a sink raises SinkError or SinkBackpressure (a SinkFailure naming
   the sink), nothing is committed, the source is paused at once and the next attempt waits:
   the sink's ``retry_after_s`` for backpressure, else ``sink_retry_s`` doubling up to 30 s,
   with jitter. The sinks keep what they buffered. Failures show in metrics, readiness and the
   logs (pipeline/sink_status.py).
4. Finish: every flushed output is done in the offset ledger, counted in the metrics, and a
   dead letter is logged.
5. Commit: the offsets the ledger says are committable, in one call to the source. A refused
   commit (CommitFailed) is logged and counted, the ledger keeps the offsets uncommitted, and a
   later attempt (after a backoff, even with nothing new to flush) commits them.

So a committed offset never covers a frame that could still be lost (docs/contracts.md §5).

No wait here is longer than the sinks' own bounds: backing off is a time to come back, not a
sleep, so the loop keeps beating while storage is down (the liveness arithmetic is in README,
"Operating the worker").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future

import structlog

from worker.backoff import backoff_s
from worker.errors import CommitFailed
from worker.frames import FrameResult
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline.config import PipelineConfig
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.pausing import Pausing
from worker.pipeline.sink_status import RETRY_MAX_S, SinkStatus
from worker.pipeline.work import Output, RejectOutput, ScoreOutput, log_fields, partition_names
from worker.ports import FrameSource
from worker.sinks.outputs import Outputs, SinkFailure, blaming

log = structlog.get_logger(__name__)


class Checkpoint:
    """Called by the pipeline's loop thread only, including from the rebalance callbacks."""

    def __init__(
        self,
        outputs: Outputs,
        source: FrameSource,
        ledger: OffsetLedger,
        metrics: Metrics,
        config: PipelineConfig,
        worker_id: str,
        clock: Callable[[], float],
        health: Health,
    ) -> None:
        self._outputs = outputs
        self._source = source
        self._ledger = ledger
        self._metrics = metrics
        self._sinks = SinkStatus(metrics, health, config.sink_retry_s)
        self._worker_id = worker_id
        self._sink_retry_s = config.sink_retry_s
        self._clock = clock
        self._pausing = Pausing(source)
        self._outbox: deque[Output] = deque()  # finished, not yet added to the sinks
        self._unflushed: list[Output] = []  # added to the sinks, not yet flushed
        self._retry_at = 0.0
        self._commit_retry_at, self._commit_failures = 0.0, 0

    def __len__(self) -> int:
        """Outputs not durable yet: waiting to be added to the sinks, or to be flushed."""
        return len(self._outbox) + len(self._unflushed)

    def add(self, output: Output) -> None:
        self._outbox.append(output)

    def extend(self, outputs: Iterable[Output]) -> None:
        self._outbox.extend(outputs)

    def rendering(self) -> list[Future[bytes]]:
        """The heatmaps still awaited by outputs in the outbox."""
        return [o.heatmap for o in self._outbox if isinstance(o, ScoreOutput) and o.heatmap]

    def write_flush_commit(self, force: bool = False) -> None:
        """Steps 1-5 above; ``force`` tries now even while backing off (partitions revoked)."""
        if not force and self._clock() < self._retry_at:
            return
        try:
            self._write_ready()
            if self._unflushed:
                self._outputs.flush()
        except SinkFailure as exc:
            partitions = {o.ticket.record.tp for o in (*self._unflushed, *self._outbox)}
            self._retry_later(self._sinks.failed(exc, partitions), exc)
            return
        if self._unflushed:
            self._finish(self._unflushed)
            self._unflushed = []
            self._sinks.flushed()
        self._commit(force)

    def update_pausing(self, intake_full: bool, now: float) -> None:
        self._pausing.update(intake_full, backing_off=now < self._retry_at)

    def _write_ready(self) -> None:
        while self._outbox:
            output = self._outbox[0]
            if isinstance(output, ScoreOutput) and output.heatmap and not output.heatmap.done():
                return
            if not self._ledger.is_stale(output.ticket):
                self._add_to_sinks(output)  # may raise: the output stays first in the outbox
                self._unflushed.append(output)
            self._outbox.popleft()

    def _add_to_sinks(self, output: Output) -> None:
        if isinstance(output, RejectOutput):
            with blaming("dead_letters"):
                self._outputs.dead_letters.add(output.rejection)
            return
        scored, png = output.scored, _png(output)
        meta = scored.frame.meta
        heatmap_uri = ""
        if png is not None:
            with blaming("heatmaps"):
                heatmap_uri = self._outputs.heatmaps.add(meta, png)
        with blaming("scores"):
            self._outputs.scores.add(
                FrameResult(
                    meta=meta,
                    score=scored.score,
                    raw_score=scored.raw_score,
                    threshold=scored.threshold,
                    is_anomaly=scored.is_anomaly,
                    model_version=scored.model_version,
                    scored_at_ms=output.scored_at_ms,
                    heatmap_uri=heatmap_uri,
                    worker_id=self._worker_id,
                )
            )

    def _retry_later(self, delay_s: float, exc: SinkFailure) -> None:
        self._retry_at = self._clock() + delay_s
        log.warning(
            "sink flush failed; nothing committed, will retry",
            sink=exc.sink,
            retry_in_s=round(delay_s, 3),
            error_class=type(exc.cause).__name__,
            error=str(exc.cause),
        )
        self._pausing.pause()

    def _finish(self, outputs: Iterable[Output]) -> None:
        """The outputs are durable: their offsets may be committed."""
        for output in outputs:
            if self._ledger.is_stale(output.ticket):
                continue
            self._ledger.done(output.ticket.record)
            if isinstance(output, RejectOutput):
                reason = output.rejection.reason
                self._metrics.frames_dead_lettered.labels(reason).inc()
                log.warning(
                    "frame dead-lettered",
                    **log_fields(output.ticket.record),
                    reason=reason,
                    error_class=output.rejection.error_class,
                    message=output.rejection.message,
                )
            else:
                line = output.scored.frame.meta.product_line
                self._metrics.frames_scored.labels(line).inc()
                if output.scored.is_anomaly:
                    self._metrics.frames_flagged.labels(line).inc()

    def _commit(self, force: bool) -> None:
        offsets = self._ledger.committable()
        if not offsets or (not force and self._clock() < self._commit_retry_at):
            return
        try:
            self._source.commit(offsets)
        except CommitFailed as exc:
            # Not marked committed, so the ledger offers them again; redelivery is harmless.
            self._commit_failures += 1
            delay_s = backoff_s(self._commit_failures, self._sink_retry_s, RETRY_MAX_S)
            self._commit_retry_at = self._clock() + delay_s
            self._metrics.commit_failures.inc()
            log.warning(
                "offset commit failed; will retry",
                partitions=partition_names(offsets),
                offsets={f"{tp.topic}:{tp.partition}": offset for tp, offset in offsets.items()},
                retry_in_s=round(delay_s, 3),
                error=str(exc),
            )
            return
        self._commit_failures, self._commit_retry_at = 0, 0.0
        self._ledger.mark_committed(offsets)
        self._metrics.commits.inc()


def _png(output: ScoreOutput) -> bytes | None:
    if output.heatmap is None:
        return None
    try:
        return output.heatmap.result()
    except Exception as exc:
        # The score matters more than its picture: whatever the renderer raised (cv2.error,
        # MemoryError...), write the score without a heatmap; the failure is counted where it
        # was rendered (InferenceStage._render).
        log.warning(
            "heatmap not rendered",
            **log_fields(output.ticket.record),
            error_class=type(exc).__name__,
            error=str(exc),
        )
        return None
