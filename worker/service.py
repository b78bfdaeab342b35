"""The worker process: logging, signals, metrics and probe servers around the pipeline's run.

The pipeline itself is composed from the settings in worker/wiring.py.

Shutdown order on SIGTERM or SIGINT: the pipeline stops polling, finishes decodes and in-flight
batches, flushes every sink, commits, then closes; the heartbeat record is removed next (it
stays while the worker drains); the metrics and probe servers go last, so a scrape during the
drain still answers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from worker.heartbeat.stores import heartbeat_store
from worker.heartbeat.writer import HeartbeatWriter
from worker.observability.health import Health
from worker.observability.logs import configure_logging
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.wiring import build_pipeline

log = structlog.get_logger("rdqc.service")


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
    heartbeat = heartbeat_writer(settings, pipeline, metrics)
    heartbeat.start()
    try:
        pipeline.run(stop)
    finally:
        heartbeat.stop()
        health.close()
        metrics.close()
        log.info("worker stopped")


def heartbeat_writer(settings: Settings, pipeline: Pipeline, metrics: Metrics) -> HeartbeatWriter:
    redis = settings.redis
    return HeartbeatWriter(
        heartbeat_store(settings),
        worker_id=settings.worker_id,
        interval_s=settings.heartbeat.interval_s,
        ttl_s=settings.heartbeat.ttl_s,
        live_models=pipeline.models_in_use,
        shadow_models=pipeline.shadow_models_in_use,
        metrics=metrics,
        # A write under way, then the removal, each bounded by the Redis timeouts.
        stop_timeout_s=2 * (redis.connect_timeout_s + redis.socket_timeout_s),
    )
