"""The worker's loop: poll -> decode -> batch -> infer -> write -> flush -> commit.

Threads and what they may touch:

- the loop thread (``run``) makes every call to the source, the sinks and the offset ledger:
  Kafka consumers are not thread-safe, and one thread keeps the sinks simple;
- the CPU pool decodes and preprocesses frames and renders heatmaps (OpenCV and torch release
  the GIL);
- one inference thread scores batches, only ever with models that are ready, so a refresh never
  swaps a model under a running batch;
- the model lifecycle's loader threads fetch, verify, load and warm up models
  (worker/modelstore/lifecycle.py), so one product line's download never holds up the others.

Each polled record gets a ``Ticket``; a revoked partition bumps its epoch, which makes the
tickets of its frames still in flight stale, so they are dropped wherever they are found. A
partition assigned back to this worker is sought back to its first unfinished record, because
the consumer kept its fetch position past them (worker/pipeline/offsets.py).
Nothing is committed until the sinks have flushed it (docs/contracts.md §5).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from typing import Any

import structlog

from rdcore.artifacts.manifest import Manifest
from worker.frame_decoder import FrameDecoder
from worker.frames import TopicPartition
from worker.modelstore.lifecycle import ModelLifecycle
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline.batching import MicroBatcher
from worker.pipeline.checkpoint import Checkpoint
from worker.pipeline.config import PipelineConfig
from worker.pipeline.decoding import DecodeStage
from worker.pipeline.inference import InferenceStage
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.pausing import Intake
from worker.pipeline.shadow import ShadowConfig
from worker.pipeline.startup import set_up_when_available
from worker.pipeline.work import InFlightFrame, Ticket, partition_names
from worker.ports import DeadLetterSink, FrameSource, HeatmapSink, ModelStore, ScoreSink
from worker.scoring import BatchScorer
from worker.sinks.outputs import Outputs

log = structlog.get_logger(__name__)

_IDLE_POLL_S = 0.5  # nothing in flight: block in poll
_BUSY_POLL_S = 0.01  # work in flight: come back soon to move it along
_LAG_EVERY_S = 10.0


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
        shadow: ShadowConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._outputs = Outputs(dead_letters=dead_letters, scores=scores, heatmaps=heatmaps)
        self._config = config
        self._worker_id = worker_id
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._cpu = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="rdqc-cpu")
        self._ledger = OffsetLedger(metrics, clock)
        self._intake = Intake(config.max_queue, config.max_inflight_bytes, config.max_poll_records)
        self._lifecycle = lifecycle = ModelLifecycle(
            models, metrics, health, shadow_testing=shadow is not None
        )
        self._decode = DecodeStage(
            decoder, self._cpu, lifecycle.preprocess_by_line, self._ledger, self._intake
        )
        self._batcher: MicroBatcher[InFlightFrame] = MicroBatcher(
            config.max_batch_size, config.max_wait_s, clock
        )
        self._infer = InferenceStage(
            lifecycle, scorer, self._cpu, self._ledger, metrics, clock, shadow
        )
        self._checkpoint = Checkpoint(
            self._outputs, source, self._ledger, metrics, config, worker_id, clock, health
        )
        self._assigned: set[TopicPartition] = set()
        self._next_refresh = self._next_lag = clock()
        self._stopping, self._deadline = False, 0.0

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set, then drain in-flight work within the grace."""
        try:
            if not set_up_when_available(self._start, stop, self._health):
                return
            while not self._should_exit(stop):
                self._health.beat()
                self._decode.submit(self._wait_for_work() if self._stopping else self._poll())
                for item in self._decode.collect():
                    if isinstance(item, InFlightFrame):
                        self._batcher.add(item)
                    else:
                        self._checkpoint.add(item)
                self._infer.submit(
                    self._batcher.drain() if self._stopping else self._batcher.ready()
                )
                self._checkpoint.extend(self._infer.collect())
                self._checkpoint.write_flush_commit()
                self._housekeeping()
        finally:
            self._close()

    def models_in_use(self) -> Mapping[str, Manifest]:
        """The manifest of the model in use per product line; safe to call from any thread."""
        return self._lifecycle.manifests_in_use()

    def shadow_models_in_use(self) -> Mapping[str, Manifest]:
        """The manifest of each line's shadow candidate; safe to call from any thread."""
        return self._lifecycle.shadow_manifests_in_use()

    def _poll(self) -> list[Ticket]:
        room = self._intake.room(
            self._ledger.pending(), self._ledger.held_bytes(), len(self._decode)
        )
        sizing = self._intake.sizing()
        # Paused before polling, so a full intake takes nothing more.
        self._checkpoint.update_pausing(room == 0 and not sizing, self._clock())
        if room == 0 and sizing:
            return self._wait_for_work()  # the first frame decodes; its size says how many fit
        timeout = _BUSY_POLL_S if self._busy() else _IDLE_POLL_S
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - self._clock()))
        records = self._source.poll(timeout, max(1, room))
        self._metrics.frames_received.inc(len(records))
        # None: read again after a rebalance, and durable already.
        return [ticket for record in records if (ticket := self._ledger.track(record)) is not None]

    def _wait_for_work(self) -> list[Ticket]:
        """Instead of polling (stopping, or sizing the first frame): wait briefly for work."""
        futures: list[Future[Any]] = [*self._decode.futures(), *self._infer.futures()]
        futures += self._checkpoint.rendering()
        if futures:
            wait(futures, _BUSY_POLL_S, FIRST_COMPLETED)
        else:
            time.sleep(_BUSY_POLL_S)  # only a flush retry is pending
        return []

    def _housekeeping(self) -> None:
        now = self._clock()
        if not self._stopping and now >= self._next_refresh:
            self._infer.refresh_models()
            self._next_refresh = now + self._config.model_poll_s
        if now >= self._next_lag:
            self._next_lag = now + _LAG_EVERY_S
            for tp, lag in self._source.lag().items():
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        self._metrics.frames_in_flight.set(self._ledger.pending())
        self._metrics.in_flight_bytes.set(self._ledger.held_bytes())

    # -- rebalance callbacks (inside source.poll, on the loop thread) ----------------------

    def _on_assigned(self, partitions: set[TopicPartition]) -> None:
        self._assigned |= partitions
        self._health.set_assigned(bool(self._assigned))
        log.info("partitions assigned", partitions=partition_names(partitions))
        for tp, offset in sorted(self._ledger.assign(partitions).items()):
            # Back to this worker with its fetch position past frames dropped at the revoke.
            self._source.seek(tp, offset)
            log.info("partition resumed", topic=tp.topic, partition=tp.partition, offset=offset)

    def _on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Make durable and commit what is finished while we still own the partitions. The rest
        # is read again: by the new owner from the committed offsets, or by this worker from
        # the first unfinished offset if the partition comes back (``_on_assigned``).
        self._checkpoint.write_flush_commit(force=True)
        self._ledger.revoke(partitions)
        self._forget(partitions)
        log.info("partitions revoked", partitions=partition_names(partitions))

    def _on_lost(self, partitions: set[TopicPartition]) -> None:
        # The group gave them to another consumer already: committing is refused, and the
        # frames in flight are read again from the committed offsets.
        self._ledger.lose(partitions)
        self._forget(partitions)
        log.warning("partitions lost", partitions=partition_names(partitions))

    def _forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            with suppress(KeyError):
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._assigned -= partitions
        self._health.set_assigned(bool(self._assigned))

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._outputs.setup()
        self._source.setup(self._on_assigned, self._on_revoked, self._on_lost)
        log.info("pipeline started", worker_id=self._worker_id)

    def _should_exit(self, stop: threading.Event) -> bool:
        if stop.is_set() and not self._stopping:
            self._stopping = True
            self._deadline = self._clock() + self._config.shutdown_grace_s
            log.info("stopping: draining in-flight frames", pending=self._ledger.pending())
        if not self._stopping:
            return False
        if self._idle():
            return True
        if self._clock() >= self._deadline:
            log.warning(
                "grace period over; unfinished frames stay uncommitted",
                pending=self._ledger.pending(),
            )
            return True
        return False

    def _busy(self) -> bool:
        return bool(self._decode or self._infer or self._checkpoint)

    def _idle(self) -> bool:
        return not self._busy() and not self._batcher and not self._ledger.committable()

    def _close(self) -> None:
        drained = self._idle()
        # The source first: leaving the group promptly hands its partitions to another worker.
        # Its revoke callback writes what is finished, so the pools still run: a cancelled
        # heatmap would fail that write.
        self._source.close()
        self._infer.close(wait=drained)
        self._cpu.shutdown(wait=drained, cancel_futures=True)
        self._outputs.close()
        log.info("pipeline stopped", drained=drained, uncommitted=self._ledger.pending())
