"""The worker process: logging, signals, metrics and probe servers around the pipeline's run.

The pipeline itself is composed from the settings in worker/wiring.py.

Shutdown order on SIGTERM or SIGINT: the pipeline stops polling, finishes decodes and in-flight
batches, flushes every sink, commits, then closes; the metrics and probe servers go last, so a
scrape during the drain still answers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from worker.observability.health import Health
from worker.observability.logs import configure_logging
from worker.observability.prometheus import Metrics
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
    try:
        pipeline.run(stop)
    finally:
        health.close()
        metrics.close()
        log.info("worker stopped")
