"""This worker's heartbeat, written every interval on its own thread, removed when it stops.

The thread only reads what other threads publish for any reader: the manifests in use (a
mapping the loop thread replaces whole) and the Prometheus counters (thread-safe). So the loop
never waits for it, and a slow or dead heartbeat store cannot delay a frame. Writing is best
effort: a failed write is counted (``rdqc_heartbeat_failures_total``), logged once per failure
streak, and tried again at the next interval; nothing is raised.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

from rdcore.artifacts.manifest import Manifest
from worker.heartbeat.record import Heartbeat, LineModels, ModelVersion
from worker.heartbeat.stores import HeartbeatStore
from worker.observability.prometheus import Metrics

log = structlog.get_logger(__name__)

ManifestsByLine = Callable[[], Mapping[str, Manifest]]


def _no_shadows() -> Mapping[str, Manifest]:
    return {}


def _model_version(manifest: Manifest) -> ModelVersion:
    return ModelVersion(version=manifest.model_version, digest=manifest.digest())


class HeartbeatWriter:
    def __init__(
        self,
        store: HeartbeatStore,
        *,
        worker_id: str,
        interval_s: float,
        ttl_s: float,
        live_models: ManifestsByLine,
        metrics: Metrics,
        shadow_models: ManifestsByLine = _no_shadows,
        stop_timeout_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._interval_s = interval_s
        self._ttl_s = ttl_s
        self._live_models = live_models
        self._shadow_models = shadow_models
        self._metrics = metrics
        self._stop_timeout_s = stop_timeout_s
        self._wall_clock = wall_clock
        self._host = socket.gethostname()
        self._started_at_ms = self._now_ms()
        self._failures = 0  # consecutive failed writes
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdqc-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop writing and remove the record, waiting at most ``stop_timeout_s`` for it.

        A store that hangs longer keeps the daemon thread busy, not the shutdown; the record
        then expires after its ttl.
        """
        self._stopping.set()
        self._thread.join(self._stop_timeout_s)
        if self._thread.is_alive():
            log.warning("heartbeat still being written at exit; it expires after its ttl")
            return
        self._store.close()

    def heartbeat(self) -> Heartbeat:
        """The record as of now."""
        scored, dead_lettered = self._metrics.frames_done()
        live, shadows = self._live_models(), self._shadow_models()
        return Heartbeat(
            worker_id=self._worker_id,
            host=self._host,
            pid=os.getpid(),
            started_at_ms=self._started_at_ms,
            last_seen_ms=self._now_ms(),
            interval_s=self._interval_s,
            ttl_s=self._ttl_s,
            frames_scored=scored,
            frames_dead_lettered=dead_lettered,
            models={
                line: LineModels(
                    live=_model_version(manifest),
                    shadow=_model_version(shadows[line]) if line in shadows else None,
                )
                for line, manifest in live.items()
            },
        )

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._write()
            self._stopping.wait(self._interval_s)
        try:
            self._store.remove(self._worker_id)
        except Exception as exc:
            self._metrics.heartbeat_failures.inc()
            log.warning("heartbeat not removed; it expires after its ttl", error=str(exc))

    def _write(self) -> None:
        try:
            self._store.write(self.heartbeat())
        # Whatever fails (the store, or describing the worker) must not end the heartbeat.
        except Exception as exc:
            self._failures += 1
            self._metrics.heartbeat_failures.inc()
            if self._failures == 1:
                log.warning(
                    "heartbeat not written; retried every interval",
                    error_class=type(exc).__name__,
                    error=str(exc),
                    interval_s=self._interval_s,
                )
            return
        if self._failures:
            log.info("heartbeat written again", failed_writes=self._failures)
            self._failures = 0

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)
