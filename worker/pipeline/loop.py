"""The worker's loop: poll -> decode -> batch -> infer -> write -> flush -> commit.

Threads and what they may touch:

- the loop thread (``run``) makes every call to the source, the sinks and the offset tracker:
  Kafka consumers are not thread-safe, and one thread keeps the sinks simple;
- the CPU pool decodes and preprocesses frames and renders heatmaps (OpenCV and torch release
  the GIL);
- one inference thread scores batches and makes every call to the model store, so a refresh
  never swaps a model under a running batch and loading never competes with scoring for the GPU.

Each polled record gets a ``_Ticket``; a revoked partition bumps its epoch, which makes the
tickets of its frames still in flight stale, so they are dropped wherever they are found.
Nothing is committed until the sinks have flushed it (docs/contracts.md §5).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog

from rdcore.artifacts.artifact import LoadedModel
from rdcore.data.preprocess import Preprocess
from rdcore.errors import ArtifactError, ImageReadError
from worker.errors import ModelLoadError, SinkBackpressure, SinkError, UnknownProductLine
from worker.frame_decoder import FrameDecoder
from worker.frames import FrameResult, Rejection, RejectReason, SourceRecord, TopicPartition
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline.batching import Batch, MicroBatcher
from worker.pipeline.offsets import OffsetTracker
from worker.ports import DeadLetterSink, FrameSource, HeatmapSink, ModelStore, ScoreSink
from worker.scoring import BatchScorer, Prepared, Scored, render_heatmap

log = structlog.get_logger(__name__)

_IDLE_POLL_S = 0.5  # nothing in flight: block in poll
_BUSY_POLL_S = 0.01  # work in flight: come back soon to move it along
_RETRY_MAX_S = 30.0
_LAG_EVERY_S = 10.0


@dataclass(frozen=True)
class PipelineConfig:
    max_batch_size: int = 32
    max_wait_s: float = 0.02
    max_queue: int = 512  # frames polled and not yet done; reaching it pauses the source
    max_poll_records: int = 256
    decode_threads: int = 2
    model_poll_s: float = 30.0
    shutdown_grace_s: float = 30.0
    sink_retry_s: float = 0.5  # first wait after a failed flush; doubles up to 30 s


@dataclass(frozen=True)
class _Ticket:
    record: SourceRecord
    epoch: int
    polled_at: float


@dataclass(frozen=True)
class _Frame:
    """A decoded frame waiting for, or in, an inference batch."""

    ticket: _Ticket
    prepared: Prepared

    @property
    def product_line(self) -> str:
        return self.prepared.product_line


@dataclass(frozen=True)
class _Reject:
    ticket: _Ticket
    rejection: Rejection


@dataclass(frozen=True)
class _Score:
    ticket: _Ticket
    scored: Scored
    scored_at_ms: int
    heatmap: Future[bytes] | None  # the PNG being rendered, when one is wanted


_Output = _Reject | _Score


class Pipeline:
    def __init__(
        self,
        *,
        source: FrameSource,
        dead_letters: DeadLetterSink,
        scores: ScoreSink,
        heatmaps: HeatmapSink,
        models: ModelStore,
        decoder: FrameDecoder,
        scorer: BatchScorer,
        config: PipelineConfig,
        worker_id: str,
        metrics: Metrics,
        health: Health,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._dead_letters = dead_letters
        self._scores = scores
        self._heatmaps = heatmaps
        self._models = models
        self._decoder = decoder
        self._scorer = scorer
        self._config = config
        self._worker_id = worker_id
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._cpu = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="rdqc-cpu")
        self._inference = ThreadPoolExecutor(1, thread_name_prefix="rdqc-inference")
        self._tracker = OffsetTracker()
        self._batcher: MicroBatcher[_Frame] = MicroBatcher(
            config.max_batch_size, config.max_wait_s, clock
        )
        self._decoding: deque[tuple[_Ticket, Future[Prepared | Rejection]]] = deque()
        self._inferring: deque[Future[list[_Output]]] = deque()
        self._outbox: deque[_Output] = deque()  # finished, not yet added to the sinks
        self._unflushed: list[_Output] = []  # added to the sinks, not yet flushed
        self._epochs: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._paused = False
        self._retry_at, self._retry_delay = 0.0, config.sink_retry_s
        self._refreshing: Future[None] | None = None
        self._next_refresh = self._next_lag = clock()
        self._stopping, self._deadline = False, 0.0
        # Written by the inference thread, read by the CPU pool: single dict operations.
        self._preprocess: dict[str, Preprocess] = {}
        self._versions: dict[str, str] = {}  # inference thread only

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set, then drain in-flight work within the grace."""
        try:
            self._start()
            while not self._should_exit(stop):
                self._health.beat()
                self._decode(self._wait_for_work() if self._stopping else self._poll())
                self._collect_decoded()
                self._dispatch(self._batcher.drain() if self._stopping else self._batcher.ready())
                self._collect_inferred()
                self._write_flush_commit()
                self._housekeeping()
        finally:
            self._close()

    # -- loop steps ------------------------------------------------------------------------

    def _poll(self) -> list[SourceRecord]:
        busy = self._decoding or self._inferring or self._outbox or self._unflushed
        timeout = _BUSY_POLL_S if busy else _IDLE_POLL_S
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - self._clock()))
        room = self._config.max_queue - self._tracker.pending()
        records = self._source.poll(timeout, max(1, min(self._config.max_poll_records, room)))
        for record in records:
            self._tracker.track(record)
        self._metrics.frames_received.inc(len(records))
        return records

    def _wait_for_work(self) -> list[SourceRecord]:
        """While stopping nothing is polled; wait briefly for in-flight work instead."""
        futures: list[Future[Any]] = [f for _, f in self._decoding]
        futures += self._inferring
        futures += [o.heatmap for o in self._outbox if isinstance(o, _Score) and o.heatmap]
        if futures:
            wait(futures, _BUSY_POLL_S, FIRST_COMPLETED)
        else:
            time.sleep(_BUSY_POLL_S)  # only a flush retry is pending
        return []

    def _decode(self, records: list[SourceRecord]) -> None:
        now = self._clock()
        for record in records:
            ticket = _Ticket(record, self._epochs.get(record.tp, 0), now)
            self._decoding.append((ticket, self._cpu.submit(self._prepare, record)))

    def _prepare(self, record: SourceRecord) -> Prepared | Rejection:
        """CPU pool: decode and, when the product line's preprocessing is known, preprocess."""
        decoded = self._decoder.decode(record)
        if isinstance(decoded, Rejection):
            return decoded
        preprocess = self._preprocess.get(decoded.meta.product_line)
        tensor = None if preprocess is None else preprocess(decoded.image)
        return Prepared(decoded, tensor, preprocess)

    def _collect_decoded(self) -> None:
        # In poll order, so the frames of one camera keep their order within a product line.
        while self._decoding and self._decoding[0][1].done():
            ticket, future = self._decoding.popleft()
            if self._stale(ticket):
                continue
            result = future.result()
            if isinstance(result, Rejection):
                self._outbox.append(_Reject(ticket, result))
            else:
                self._batcher.add(_Frame(ticket, result))

    def _dispatch(self, batches: list[Batch[_Frame]]) -> None:
        for batch in batches:
            frames = [frame for frame in batch.frames if not self._stale(frame.ticket)]
            if frames:
                live = Batch(batch.product_line, frames)
                self._inferring.append(self._inference.submit(self._infer, live))

    def _collect_inferred(self) -> None:
        while self._inferring and self._inferring[0].done():
            self._outbox.extend(self._inferring.popleft().result())

    def _write_flush_commit(self, ignore_backoff: bool = False) -> None:
        if not ignore_backoff and self._clock() < self._retry_at:
            return
        try:
            self._write_ready()
            if not self._unflushed:
                return
            # Heatmaps first: a score's heatmap_uri must name a stored object (contract §3).
            self._heatmaps.flush()
            self._scores.flush()
            self._dead_letters.flush()
        except SinkBackpressure as exc:
            self._retry_later(exc.retry_after_s, exc)
            return
        except SinkError as exc:
            self._retry_later(self._retry_delay, exc)
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX_S)
            return
        self._retry_delay = self._config.sink_retry_s
        self._finish(self._unflushed)
        self._unflushed = []
        self._commit()

    def _housekeeping(self) -> None:
        now = self._clock()
        if not self._stopping and now >= self._next_refresh:
            if self._refreshing is None or self._refreshing.done():
                if self._refreshing is not None:
                    self._refreshing.result()  # surfaces an unexpected error of the last one
                self._refreshing = self._inference.submit(self._refresh_models)
            self._next_refresh = now + self._config.model_poll_s
        if now >= self._next_lag:
            self._next_lag = now + _LAG_EVERY_S
            for tp, lag in self._source.lag().items():
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        pending = self._tracker.pending()
        self._metrics.frames_in_flight.set(pending)
        self._set_paused(pending >= self._config.max_queue or now < self._retry_at)

    # -- writing ---------------------------------------------------------------------------

    def _write_ready(self) -> None:
        """Add finished frames to the sinks in order; a frame still rendering holds the rest."""
        while self._outbox:
            output = self._outbox[0]
            if isinstance(output, _Score) and output.heatmap and not output.heatmap.done():
                return
            if not self._stale(output.ticket):
                self._add(output)  # may raise: the frame stays first in the outbox
                self._unflushed.append(output)
            self._outbox.popleft()

    def _add(self, output: _Output) -> None:
        if isinstance(output, _Reject):
            self._dead_letters.add(output.rejection)
            return
        scored, png = output.scored, self._png(output)
        meta = scored.frame.meta
        self._scores.add(
            FrameResult(
                meta=meta,
                score=scored.score,
                raw_score=scored.raw_score,
                threshold=scored.threshold,
                is_anomaly=scored.is_anomaly,
                model_version=scored.model_version,
                scored_at_ms=output.scored_at_ms,
                heatmap_uri="" if png is None else self._heatmaps.add(meta, png),
                worker_id=self._worker_id,
            )
        )

    @staticmethod
    def _png(output: _Score) -> bytes | None:
        if output.heatmap is None:
            return None
        try:
            return output.heatmap.result()
        except (ValueError, ImageReadError) as exc:
            # The score matters more than its picture: write it without a heatmap.
            log.warning("heatmap not rendered", **_where(output.ticket.record), error=str(exc))
            return None

    def _retry_later(self, delay_s: float, exc: Exception) -> None:
        self._retry_at = self._clock() + delay_s
        log.warning(
            "sink flush failed; nothing committed, will retry",
            retry_in_s=delay_s,
            error_class=type(exc).__name__,
            error=str(exc),
        )
        self._set_paused(True)

    def _finish(self, outputs: Iterable[_Output]) -> None:
        """The outputs are durable: their offsets may be committed."""
        for output in outputs:
            if self._stale(output.ticket):
                continue
            self._tracker.done(output.ticket.record)
            if isinstance(output, _Reject):
                reason = output.rejection.reason
                self._metrics.frames_dead_lettered.labels(reason).inc()
                log.warning(
                    "frame dead-lettered",
                    **_where(output.ticket.record),
                    reason=reason,
                    error_class=output.rejection.error_class,
                    message=output.rejection.message,
                )
            else:
                line = output.scored.frame.meta.product_line
                self._metrics.frames_scored.labels(line).inc()
                if output.scored.is_anomaly:
                    self._metrics.frames_flagged.labels(line).inc()

    def _commit(self) -> None:
        offsets = self._tracker.committable()
        if offsets:
            self._source.commit(offsets)
            self._tracker.mark_committed(offsets)
            self._metrics.commits.inc()

    # -- inference thread ------------------------------------------------------------------

    def _infer(self, batch: Batch[_Frame]) -> list[_Output]:
        try:
            loaded = self._model(batch.product_line)
        except UnknownProductLine as exc:
            return _reject_all(batch, "unknown_product_line", exc)
        except ModelLoadError as exc:
            return _reject_all(batch, "model_unavailable", exc)
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
        outputs: list[_Output] = []
        for frame, result in zip(batch.frames, scored, strict=True):
            latency_ms = max(0, scored_at_ms - result.frame.meta.captured_at_ms)
            self._metrics.end_to_end_latency.observe(latency_ms / 1000)
            heatmap = None
            if result.anomaly_map is not None:
                heatmap = self._cpu.submit(render_heatmap, result)
            outputs.append(_Score(frame.ticket, result, scored_at_ms, heatmap))
        return outputs

    def _model(self, product_line: str) -> LoadedModel:
        """The live model; a version change is logged and shown where it takes effect."""
        try:
            loaded = self._models.get(product_line)
            _ = loaded.calibration  # raises for a model that cannot normalize its scores
        except ModelLoadError as exc:
            self._health.set_models_ok(False, f"{product_line}: {exc}")
            raise
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from exc
        self._health.set_models_ok(True)
        self._preprocess[product_line] = loaded.preprocess
        previous = self._versions.get(product_line)
        if previous != loaded.version:
            self._versions[product_line] = loaded.version
            self._metrics.set_model_version(product_line, previous, loaded.version)
            log.info(
                "model in use",
                product_line=product_line,
                model_version=loaded.version,
                previous_version=previous,
            )
        return loaded

    def _refresh_models(self) -> None:
        try:
            swaps = self._models.refresh()
        except ModelLoadError as exc:
            self._health.set_models_ok(False, str(exc))
            log.warning("model refresh failed; current models keep serving", error=str(exc))
            return
        self._health.set_models_ok(True)
        for swap in swaps:
            log.info(
                "model swapped",
                product_line=swap.product_line,
                old_version=swap.old_version,
                new_version=swap.new_version,
            )

    # -- rebalance callbacks (inside source.poll, on the loop thread) ----------------------

    def _on_assigned(self, partitions: set[TopicPartition]) -> None:
        self._assigned |= partitions
        self._health.set_assigned(bool(self._assigned))
        log.info("partitions assigned", partitions=_names(partitions))

    def _on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Make durable and commit what is finished while we still own the partitions; the new
        # owner gets the rest again from the committed offsets.
        self._write_flush_commit(ignore_backoff=True)
        for tp in partitions:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
            with suppress(KeyError):
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._tracker.revoke(partitions)
        self._assigned -= partitions
        self._health.set_assigned(bool(self._assigned))
        log.info("partitions revoked", partitions=_names(partitions))

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        for sink in (self._dead_letters, self._scores, self._heatmaps):
            sink.setup()
        self._source.setup(self._on_assigned, self._on_revoked)
        log.info("pipeline started", worker_id=self._worker_id)

    def _should_exit(self, stop: threading.Event) -> bool:
        if stop.is_set() and not self._stopping:
            self._stopping = True
            self._deadline = self._clock() + self._config.shutdown_grace_s
            log.info("stopping: draining in-flight frames", pending=self._tracker.pending())
        if not self._stopping:
            return False
        if self._idle():
            return True
        if self._clock() >= self._deadline:
            log.warning(
                "grace period over; unfinished frames stay uncommitted",
                pending=self._tracker.pending(),
            )
            return True
        return False

    def _idle(self) -> bool:
        busy = self._decoding or self._inferring or self._outbox or self._unflushed
        return not busy and not self._batcher and not self._tracker.committable()

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            (self._source.pause if paused else self._source.resume)()
            self._paused = paused

    def _close(self) -> None:
        drained = self._idle()
        self._inference.shutdown(wait=drained, cancel_futures=True)
        self._cpu.shutdown(wait=drained, cancel_futures=True)
        # The source first: leaving the group promptly hands its partitions to another worker.
        self._source.close()
        for sink in (self._heatmaps, self._scores, self._dead_letters):
            sink.close()
        log.info("pipeline stopped", drained=drained, uncommitted=self._tracker.pending())

    def _stale(self, ticket: _Ticket) -> bool:
        """Its partition was revoked after it was polled: another worker owns it now."""
        return ticket.epoch != self._epochs.get(ticket.record.tp, 0)


def _reject_all(batch: Batch[_Frame], reason: RejectReason, exc: Exception) -> list[_Output]:
    return [
        _Reject(f.ticket, Rejection(f.ticket.record, reason, type(exc).__name__, str(exc)))
        for f in batch.frames
    ]


def _where(record: SourceRecord) -> dict[str, object]:
    """The fields that locate a frame in per-frame log events."""
    try:
        frame_id = record.header("frame_id")
    except UnicodeDecodeError:
        frame_id = None
    return {
        "frame_id": frame_id or f"{record.topic}:{record.partition}:{record.offset}",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}:{tp.partition}" for tp in sorted(partitions)]
