"""Whether the sinks are failing: metrics, readiness and the stall log, from the checkpoint.

A flush that fails (after the sink's own retries) counts in
``rdqc_sink_flush_failures_total{sink}``, sets ``rdqc_sink_failing{sink}`` to 1 and turns
readiness off with the sink and its error; the ``_STALL_AFTER_FAILURES``-th failure in a row is
logged at error level, once per stall. The next successful flush turns it all back. A sink that
pushes back (SinkBackpressure) is working, just full: it counts as a retry, not a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

import structlog

from worker.backoff import backoff_s
from worker.frames import TopicPartition
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline.work import partition_names
from worker.sinks.outputs import SinkFailure, SinkName

log = structlog.get_logger(__name__)

RETRY_MAX_S = 30.0
# Failed flushes in a row after which the stall is logged at error level (once per stall).
_STALL_AFTER_FAILURES = 5
_WRITES_OF: dict[SinkName, str] = {
    "heatmaps": "heatmaps",
    "scores": "scores",
    "dead_letters": "dead letters",
}


class SinkStatus:
    """Called by the pipeline's loop thread only."""

    def __init__(self, metrics: Metrics, health: Health, first_retry_s: float) -> None:
        self._metrics = metrics
        self._health = health
        self._first_retry_s = first_retry_s
        self._failures = 0  # in a row
        self._set_failing(None)

    def failed(self, exc: SinkFailure, partitions: Iterable[TopicPartition]) -> float:
        """Record a failed flush of ``partitions``' outputs; returns how long to back off."""
        self._metrics.sink_flush_retries.labels(exc.sink).inc()
        if exc.retry_after_s is not None:
            return exc.retry_after_s
        self._failures += 1
        self._metrics.sink_flush_failures.labels(exc.sink).inc()
        self._set_failing(exc.sink)
        self._health.set_sinks_ok(False, str(exc))
        if self._failures == _STALL_AFTER_FAILURES:
            log.error(
                f"partition stalled: {_WRITES_OF[exc.sink]} cannot be written; nothing is "
                "committed until they are",
                sink=exc.sink,
                partitions=partition_names(partitions),
                failures=self._failures,
                error=str(exc.cause),
            )
        return backoff_s(self._failures, self._first_retry_s, RETRY_MAX_S)

    def flushed(self) -> None:
        if not self._failures:
            return
        log.info("sinks recovered", after_failures=self._failures)
        self._failures = 0
        self._set_failing(None)
        self._health.set_sinks_ok(True)

    def _set_failing(self, failing: SinkName | None) -> None:
        for sink in get_args(SinkName):
            self._metrics.sink_failing.labels(sink).set(1 if sink == failing else 0)
