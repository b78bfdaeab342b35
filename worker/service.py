"""The worker process: settings -> backends -> pipeline, with logging, metrics, probes, signals.

Shutdown order on SIGTERM or SIGINT: the pipeline stops polling, finishes decodes and in-flight
batches, flushes every sink, commits, then closes; the metrics and probe servers go last, so a
scrape during the drain still answers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from rdcore.device import resolve_device
from worker.frame_decoder import FrameDecoder
from worker.modelstore.store import CachingModelStore, ModelLoadEvent
from worker.observability.health import Health
from worker.observability.logs import configure_logging
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline, PipelineConfig
from worker.scoring import BatchScorer
from worker.settings import Settings
from worker.wiring import backends

log = structlog.get_logger("rdqc.service")


def build_pipeline(settings: Settings, metrics: Metrics, health: Health) -> Pipeline:
    wired = backends(settings)
    device = resolve_device(settings.device)

    def record_load(event: ModelLoadEvent) -> None:
        metrics.model_load(event.product_line, event.ok)

    models = CachingModelStore(
        wired.models,
        settings.models.cache_dir,
        device,
        max_resident=settings.models.max_resident,
        warmup=settings.models.warmup,
        on_load=record_load,
    )
    config = PipelineConfig(
        max_batch_size=settings.batching.max_size,
        max_wait_s=settings.batching.max_wait_ms / 1000.0,
        max_queue=settings.batching.max_queue,
        max_poll_records=settings.kafka.max_poll_records,
        decode_threads=settings.decode_threads,
        model_poll_s=settings.models.poll_s,
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    return Pipeline(
        source=wired.source,
        dead_letters=wired.dead_letters,
        scores=wired.scores,
        heatmaps=wired.heatmaps,
        models=models,
        decoder=FrameDecoder(
            settings.max_payload_bytes, settings.min_dimension, settings.max_dimension
        ),
        scorer=BatchScorer(
            device, settings.precision, settings.channels_last, settings.heatmaps_for
        ),
        config=config,
        worker_id=settings.worker_id,
        metrics=metrics,
        health=health,
    )


def install_signal_handlers(stop: threading.Event) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when no event is given)."""
    configure_logging(settings.log_level, settings.log_format)
    log.info("starting worker", settings=settings.redacted())
    if stop is None:
        stop = threading.Event()
        install_signal_handlers(stop)
    metrics = Metrics()
    health = Health()
    pipeline = build_pipeline(settings, metrics, health)
    if settings.metrics_port:
        log.info("metrics listening", port=metrics.serve(settings.metrics_port))
    if settings.health_port:
        log.info("probes listening", port=health.serve(settings.health_port))
    try:
        pipeline.run(stop)
    finally:
        health.close()
        metrics.close()
        log.info("worker stopped")
