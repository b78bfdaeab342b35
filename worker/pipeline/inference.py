"""The inference stage: one thread scores batches and makes every call to the model store.

One thread, so a model refresh queued behind the batches never swaps a model under a running
batch, and loading never competes with scoring for the GPU. Heatmaps are rendered on the CPU
pool, so a batch with many flagged frames does not hold up the next batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import structlog

from worker.errors import ModelLoadError, UnknownProductLine
from worker.modelstore.lifecycle import ModelLifecycle
from worker.observability.prometheus import Metrics
from worker.pipeline.batching import Batch
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.work import InFlightFrame, Output, ScoreOutput, reject_all
from worker.scoring import BatchScorer, render_heatmap

log = structlog.get_logger(__name__)


class InferenceStage:
    """Public methods are called by the loop thread; ``_infer`` runs on the inference thread."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        scorer: BatchScorer,
        cpu: Executor,
        ledger: OffsetLedger,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._lifecycle = lifecycle
        self._scorer = scorer
        self._cpu = cpu
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="rdqc-inference")
        self._inferring: deque[Future[list[Output]]] = deque()
        self._refreshing: Future[None] | None = None

    def __len__(self) -> int:
        """Batches submitted and not collected yet."""
        return len(self._inferring)

    def submit(self, batches: list[Batch[InFlightFrame]]) -> None:
        for batch in batches:
            frames = [frame for frame in batch.frames if not self._ledger.is_stale(frame.ticket)]
            if frames:
                live = Batch(batch.product_line, frames)
                self._inferring.append(self._thread.submit(self._infer, live))

    def collect(self) -> list[Output]:
        """The outputs of the finished batches, in the order the batches were submitted."""
        outputs: list[Output] = []
        while self._inferring and self._inferring[0].done():
            outputs += self._inferring.popleft().result()
        return outputs

    def futures(self) -> list[Future[list[Output]]]:
        return list(self._inferring)

    def refresh_models(self) -> None:
        """Queue a model refresh behind the batches, unless the last one is still queued."""
        if self._refreshing is None or self._refreshing.done():
            if self._refreshing is not None:
                self._refreshing.result()  # surfaces an unexpected error of the last one
            self._refreshing = self._thread.submit(self._lifecycle.refresh)

    def close(self, wait: bool) -> None:
        self._thread.shutdown(wait=wait, cancel_futures=True)

    def _infer(self, batch: Batch[InFlightFrame]) -> list[Output]:
        try:
            loaded = self._lifecycle.model(batch.product_line)
        except UnknownProductLine as exc:
            return reject_all(batch, "unknown_product_line", exc)
        except ModelLoadError as exc:
            return reject_all(batch, "model_unavailable", exc)
        started = self._clock()
        for frame in batch.frames:
            self._metrics.queue_wait.observe(started - frame.ticket.polled_at)
        scored = self._scorer.score([frame.prepared for frame in batch.frames], loaded)
        seconds = self._clock() - started
        scored_at_ms = time.time_ns() // 1_000_000
        self._metrics.batch_size.observe(len(scored))
        self._metrics.inference_seconds.labels(batch.product_line).observe(seconds)
        log.debug(
            "batch scored",
            product_line=batch.product_line,
            size=len(scored),
            model_version=loaded.version,
            seconds=round(seconds, 4),
        )
        outputs: list[Output] = []
        for frame, result in zip(batch.frames, scored, strict=True):
            latency_ms = max(0, scored_at_ms - result.frame.meta.captured_at_ms)
            self._metrics.end_to_end_latency.observe(latency_ms / 1000)
            heatmap = None
            if result.anomaly_map is not None:
                heatmap = self._cpu.submit(render_heatmap, result)
            outputs.append(ScoreOutput(frame.ticket, result, scored_at_ms, heatmap))
        return outputs
