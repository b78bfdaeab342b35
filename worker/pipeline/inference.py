"""The inference stage: batches wait for their product line's model, then one thread scores them.

Models load on the model lifecycle's loader threads (modelstore/lifecycle.py), never here. A
batch whose model is not ready is parked behind the earlier batches of its product line and
sent on, in order, once the model is ready; the batches of other product lines keep flowing.
Parked frames stay in flight: the offset ledger counts them, so the pipeline's in-flight limits
bound them, and on shutdown past the grace period they stay uncommitted and are redelivered.
Only a definite "no model is published for this product line" dead-letters them.

One inference thread, so batches never compete with each other for the GPU. No fault of one
frame stops the worker: a batch that raises is scored frame by frame (BatchScorer.score_each)
and a frame that fails alone is dead-lettered as ``scoring_failed``; a NaN or infinite score
as ``non_finite_score``. Heatmaps are rendered on the CPU pool, so a batch with many flagged
frames does not hold up the next batch; one that cannot be rendered is counted here, and its
score is written without it.

With shadow testing on, each finished batch whose line has a candidate is offered to
ShadowScoring (pipeline/shadow.py), which may score it again on the inference thread within its
budget; its outputs go on to the checkpoint untouched, whatever the candidate does.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog
import torch

from rdcore.artifacts.artifact import LoadedModel
from worker.errors import UnknownProductLine
from worker.modelstore.lifecycle import ModelLifecycle
from worker.modelstore.shadow_candidates import Candidate
from worker.observability.prometheus import GpuMemory, GpuMemoryProbe, Metrics
from worker.pipeline.batching import Batch
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.shadow import ScoredFrame, ShadowConfig, ShadowScoring
from worker.pipeline.work import InFlightFrame, Output, ScoreOutput, reject, reject_all
from worker.scoring import BatchScorer, Scored, render_heatmap

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Inferring:
    """A batch on the inference thread, and the shadow candidate of its line when it was sent."""

    batch: Batch[InFlightFrame]
    future: Future[list[Output]]
    candidate: Candidate | None


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
        shadow: ShadowConfig | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._scorer = scorer
        self._cpu = cpu
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="rdqc-inference")
        self._gpu_memory = cuda_memory_probe(scorer.device)
        self._parked: dict[str, deque[Batch[InFlightFrame]]] = {}
        self._inferring: deque[_Inferring] = deque()
        self._rejected: list[Output] = []
        # Live batches sent (loop thread) and started (inference thread): each side only counts
        # up its own, so the shadow can tell on the inference thread whether live work waits.
        self._sent = self._started = 0
        self._shadow: ShadowScoring | None = None
        if shadow is not None:
            self._shadow = ShadowScoring(
                shadow, self._thread, scorer, metrics, clock, lambda: self._sent > self._started
            )

    def __len__(self) -> int:
        """Batches parked, or submitted and not collected yet, and rejections not collected."""
        parked = sum(len(batches) for batches in self._parked.values())
        return parked + len(self._inferring) + len(self._rejected)

    def submit(self, batches: list[Batch[InFlightFrame]]) -> None:
        """Park the batches behind their product line's, then send on those whose model is ready.

        Called on every turn of the loop, so parked batches leave as soon as their model is.
        """
        self._lifecycle.settle()
        for batch in batches:
            self._parked.setdefault(batch.product_line, deque()).append(batch)
        for product_line in list(self._parked):
            self._dispatch(product_line)

    def collect(self) -> list[Output]:
        """Rejected batches, and the outputs of the finished batches in submission order."""
        outputs, self._rejected = self._rejected, []
        while self._inferring and self._inferring[0].future.done():
            inferring = self._inferring.popleft()
            finished = inferring.future.result()
            outputs += finished
            if self._shadow is not None and inferring.candidate is not None:
                self._shadow.offer(_scored_frames(inferring.batch, finished), inferring.candidate)
        if self._shadow is not None:
            self._shadow.collect()
        return outputs

    def futures(self) -> list[Future[list[Output]]]:
        return [inferring.future for inferring in self._inferring]

    def refresh_models(self) -> None:
        self._lifecycle.refresh()

    def close(self, wait: bool) -> None:
        self._thread.shutdown(wait=wait, cancel_futures=True)
        if self._shadow is not None:
            self._shadow.collect()  # a shadow batch that finished in time is still written
            self._shadow.close()
        self._lifecycle.close()

    def _dispatch(self, product_line: str) -> None:
        try:
            loaded = self._lifecycle.model(product_line)
        except UnknownProductLine as exc:
            for batch in self._parked.pop(product_line):
                self._rejected += reject_all(self._live(batch), "unknown_product_line", exc)
            return
        if loaded is None:
            self._drop_stale(product_line)
            return
        candidate = self._lifecycle.shadow_candidate(product_line)
        for batch in self._parked.pop(product_line):
            live = self._live(batch)
            if live.frames:
                self._sent += 1
                future = self._thread.submit(self._infer, live, loaded)
                self._inferring.append(_Inferring(live, future, candidate))

    def _live(self, batch: Batch[InFlightFrame]) -> Batch[InFlightFrame]:
        """The batch without the frames of partitions revoked since they were polled."""
        frames = [frame for frame in batch.frames if not self._ledger.is_stale(frame.ticket)]
        return Batch(batch.product_line, frames)

    def _drop_stale(self, product_line: str) -> None:
        live = deque(b for b in map(self._live, self._parked[product_line]) if b.frames)
        if live:
            self._parked[product_line] = live
        else:
            del self._parked[product_line]
            self._lifecycle.abandon(product_line)

    def _infer(self, batch: Batch[InFlightFrame], loaded: LoadedModel) -> list[Output]:
        self._started += 1
        started = self._clock()
        for frame in batch.frames:
            self._metrics.queue_wait.observe(started - frame.ticket.polled_at)
        results = self._scorer.score_each([frame.prepared for frame in batch.frames], loaded)
        seconds = self._clock() - started
        scored_at_ms = time.time_ns() // 1_000_000
        self._metrics.batch_size.observe(len(results))
        self._metrics.inference_seconds.labels(batch.product_line).observe(seconds)
        if self._gpu_memory is not None:
            self._metrics.update_gpu_memory(self._gpu_memory)
        log.debug(
            "batch scored",
            product_line=batch.product_line,
            size=len(results),
            model_version=loaded.version,
            seconds=round(seconds, 4),
        )
        return [
            self._output(frame, result, scored_at_ms)
            for frame, result in zip(batch.frames, results, strict=True)
        ]

    def _output(
        self, frame: InFlightFrame, result: Scored | Exception, scored_at_ms: int
    ) -> Output:
        if isinstance(result, Exception):
            return reject(frame.ticket, "scoring_failed", result)
        if not (math.isfinite(result.raw_score) and math.isfinite(result.score)):
            error = FloatingPointError(
                f"model {result.model_version} scored the frame {result.raw_score}"
            )
            return reject(frame.ticket, "non_finite_score", error)
        latency_ms = max(0, scored_at_ms - result.frame.meta.captured_at_ms)
        self._metrics.end_to_end_latency.observe(latency_ms / 1000)
        heatmap = None
        if result.anomaly_map is not None:
            heatmap = self._cpu.submit(self._render, result)
        return ScoreOutput(frame.ticket, result, scored_at_ms, heatmap)

    def _render(self, scored: Scored) -> bytes:
        """CPU pool: the heatmap PNG.

        A failure is counted here; the checkpoint logs it and writes the score without a heatmap.
        """
        try:
            return render_heatmap(scored)
        except Exception:
            self._metrics.heatmap_failures.labels(scored.frame.meta.product_line).inc()
            raise


def cuda_memory_probe(device: torch.device) -> GpuMemoryProbe | None:
    """Reads the allocator's memory on ``device``; None off CUDA, so a CPU worker pays nothing."""
    if device.type != "cuda":
        return None
    name = str(device)

    def probe() -> GpuMemory:
        # One read of the allocator's stats for both numbers (memory_allocated() and
        # memory_reserved() would each read all of them).
        stats = torch.cuda.memory_stats(device)
        return GpuMemory(
            name,
            stats.get("allocated_bytes.all.current", 0),
            stats.get("reserved_bytes.all.current", 0),
        )

    return probe


def _scored_frames(batch: Batch[InFlightFrame], outputs: list[Output]) -> list[ScoredFrame]:
    """The frames of a batch the live model scored, with its results (outputs are in order)."""
    return [
        (frame.prepared, output.scored)
        for frame, output in zip(batch.frames, outputs, strict=True)
        if isinstance(output, ScoreOutput)
    ]
