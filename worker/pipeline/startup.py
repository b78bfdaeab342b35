"""Starting the pipeline while a service it needs may be down: wait it out, never exit.

A worker that exits because Redis, MinIO or Kafka did not answer at start-up is restarted by
its orchestrator into the same outage: a crash loop that helps nobody. Instead the set-up is
retried with backoff; meanwhile the worker is alive (the loop's heartbeat goes on) and not ready
(readiness names what it waits for), and a stop request ends the wait at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from worker.backoff import backoff_s
from worker.errors import SinkBackpressure, SinkError
from worker.observability.health import Health

log = structlog.get_logger(__name__)

_FIRST_RETRY_S = 1.0
_MAX_RETRY_S = 30.0
# What a service that is down raises from set-up: the sinks wrap their clients' errors in
# SinkError; the Kafka source raises ConnectionError when no broker answers.
_UNAVAILABLE = (SinkError, SinkBackpressure, ConnectionError)


def set_up_when_available(
    set_up: Callable[[], None], stop: threading.Event, health: Health
) -> bool:
    """Call ``set_up`` until it succeeds (True) or ``stop`` is set first (False).

    ``set_up`` must be safe to call again after it failed part-way.
    """
    failures = 0
    while not stop.is_set():
        health.beat()
        try:
            set_up()
        except _UNAVAILABLE as exc:
            failures += 1
            delay = backoff_s(failures, _FIRST_RETRY_S, _MAX_RETRY_S)
            health.set_sinks_ok(False, f"starting: {exc}")
            (log.error if failures == 1 else log.warning)(
                "a service is unavailable at start-up; waiting for it",
                error_class=type(exc).__name__,
                error=str(exc),
                attempts=failures,
                retry_in_s=round(delay, 2),
            )
            stop.wait(delay)
            continue
        if failures:
            log.info("services available; starting", failed_attempts=failures)
            health.set_sinks_ok(True)
        return True
    return False
