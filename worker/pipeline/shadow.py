"""Shadow scoring: frames the live model scored, scored again by their line's candidate.

The candidate never decides anything: its results go only to the shadow sink, as entries that
carry both verdicts (worker/sinks/shadow_entry.py), and never into the scores, heatmaps, dead
letters or commits. Shadow batches run on the inference thread, after the live batch they
repeat, rather than on a thread of their own: one GPU then never runs two models' batches at
once, so a live batch never shares the device and memory peaks at the larger model instead of
at both together; and live work can simply go first. The price: a live batch that arrives while
a shadow batch runs waits for it, which the budget below bounds. The live model's scorer is
reused as it is; the anomaly maps it returns for the candidate's flagged frames are dropped.

The budget, which keeps the live results' delay bounded:

- at most one shadow batch is queued or running; a live batch offered meanwhile is not
  shadow-scored;
- a shadow batch that would start while a live batch waits for the inference thread is skipped,
  so live work is delayed by at most the one shadow batch already running;
- shadow batches take at most ``max_share`` of the inference thread's time: after one took
  ``t`` seconds, the next may start ``t * (1 / max_share - 1)`` seconds later.

Frames left out by the budget are counted in ``rdqc_shadow_dropped_total{product_line}``.
Frames the candidate fails to score (an exception, a NaN or infinite score) are counted in
``rdqc_shadow_errors_total``; a batch it fails entirely also backs the line's next shadow batch
off (about 1 s, doubling to 30 s), so a broken candidate costs neither time nor log volume. Nothing
here raises into the loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import structlog

from worker.backoff import backoff_s
from worker.modelstore.shadow_candidates import Candidate
from worker.observability.prometheus import Metrics
from worker.ports import ShadowSink
from worker.scoring import BatchScorer, Prepared, Scored
from worker.sinks.shadow_entry import ShadowEntry
from worker.sinks.shadow_writer import ShadowWriter

log = structlog.get_logger(__name__)

_FAILED_BATCH_BACKOFF_S = (1.0, 30.0)  # first and longest pause after a wholly failed batch


@dataclass(frozen=True)
class ShadowConfig:
    """What the worker needs for shadow testing; without it no candidate is ever looked for."""

    sink: ShadowSink
    worker_id: str
    max_share: float = 0.5  # of the inference thread's time, for shadow batches


ScoredFrame = tuple[Prepared, Scored]
"""A frame the live model scored: its model input and the live result."""


@dataclass(frozen=True)
class _Outcome:
    entries: list[ShadowEntry]
    errors: int  # frames the candidate failed to score
    seconds: float
    finished_at: float
    skipped: bool = False  # live work was waiting, so nothing was scored


@dataclass(frozen=True)
class _Running:
    product_line: str
    frames: int
    future: Future[_Outcome]


class ShadowScoring:
    """``offer``, ``collect`` and ``close`` run on the loop thread, ``_score`` on the inference
    thread. ``live_waiting`` says, on the inference thread, whether a live batch waits."""

    def __init__(
        self,
        config: ShadowConfig,
        inference_thread: Executor,
        scorer: BatchScorer,
        metrics: Metrics,
        clock: Callable[[], float],
        live_waiting: Callable[[], bool],
    ) -> None:
        if not 0 < config.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {config.max_share}")
        self._config = config
        self._thread = inference_thread
        self._scorer = scorer
        self._metrics = metrics
        self._clock = clock
        self._live_waiting = live_waiting
        self._writer = ShadowWriter(config.sink, metrics)
        self._running: _Running | None = None
        self._next_at = 0.0  # the share's pause
        self._failed_batches: dict[str, int] = {}  # per line, wholly failed batches in a row
        self._paused_until: dict[str, float] = {}  # per line, after wholly failed batches

    def offer(self, frames: Sequence[ScoredFrame], candidate: Candidate) -> None:
        """Shadow-score these frames of one product line if the budget allows, else count them."""
        if not frames:
            return
        self.collect()
        line = frames[0][1].frame.meta.product_line
        now = self._clock()
        if self._running is not None or now < max(self._next_at, self._paused_until.get(line, 0)):
            self._metrics.shadow_dropped.labels(line).inc(len(frames))
            return
        future = self._thread.submit(self._score, list(frames), candidate)
        self._running = _Running(line, len(frames), future)

    def collect(self) -> None:
        """Hand a finished shadow batch's entries to the shadow sink; called every turn."""
        if self._running is None or not self._running.future.done():
            return
        running, self._running = self._running, None
        line = running.product_line
        if running.future.cancelled():  # the worker is stopping
            self._metrics.shadow_dropped.labels(line).inc(running.frames)
            return
        try:
            outcome = running.future.result()
        except Exception as exc:
            self._metrics.shadow_errors.labels(line).inc(running.frames)
            log.warning(
                "shadow batch failed",
                product_line=line,
                error_class=type(exc).__name__,
                error=str(exc),
            )
            return
        if outcome.skipped:
            self._metrics.shadow_dropped.labels(line).inc(running.frames)
            return
        self._budget(outcome, line)
        if outcome.errors:
            self._metrics.shadow_errors.labels(line).inc(outcome.errors)
        if outcome.entries:
            self._metrics.shadow_scored.labels(line).inc(len(outcome.entries))
            self._writer.write(outcome.entries)

    def close(self) -> None:
        self._writer.close()

    def _budget(self, outcome: _Outcome, line: str) -> None:
        """When the next shadow batch may start: the share's pause, and a failing line's backoff."""
        self._next_at = outcome.finished_at + outcome.seconds * (1 / self._config.max_share - 1)
        if outcome.entries:
            self._failed_batches.pop(line, None)
            self._paused_until.pop(line, None)
            return
        failed = self._failed_batches.get(line, 0) + 1
        self._failed_batches[line] = failed
        self._paused_until[line] = outcome.finished_at + backoff_s(failed, *_FAILED_BATCH_BACKOFF_S)
        if failed == 1:
            log.warning("shadow candidate failed a whole batch; backing off", product_line=line)

    def _score(self, frames: list[ScoredFrame], candidate: Candidate) -> _Outcome:
        """Inference thread: the candidate's results beside the live ones, as shadow entries."""
        if self._live_waiting():
            return _Outcome([], 0, 0.0, self._clock(), skipped=True)
        started = self._clock()
        # The scorer's own log lines (a batch retried frame by frame) then name the candidate.
        with structlog.contextvars.bound_contextvars(shadow_candidate=candidate.version):
            inputs = [prepared for prepared, _ in frames]
            results = self._scorer.score_each(inputs, candidate.loaded)
        finished = self._clock()
        scored_at_ms = time.time_ns() // 1_000_000
        entries = []
        for (_, live), result in zip(frames, results, strict=True):
            if isinstance(result, Exception) or not (
                math.isfinite(result.raw_score) and math.isfinite(result.score)
            ):
                continue
            entries.append(self._entry(live, result, candidate, scored_at_ms))
        return _Outcome(entries, len(frames) - len(entries), finished - started, finished)

    def _entry(
        self, live: Scored, result: Scored, candidate: Candidate, scored_at_ms: int
    ) -> ShadowEntry:
        return ShadowEntry(
            meta=live.frame.meta,
            scored_at_ms=scored_at_ms,
            candidate_version=candidate.version,
            candidate_digest=candidate.digest,
            score=result.score,
            raw_score=result.raw_score,
            threshold=result.threshold,
            is_anomaly=result.is_anomaly,
            model_version=live.model_version,
            current_score=live.score,
            current_raw_score=live.raw_score,
            current_is_anomaly=live.is_anomaly,
            worker_id=self._config.worker_id,
        )
