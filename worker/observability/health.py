"""Liveness and readiness for the orchestrator, over a tiny HTTP server on its own thread.

``/healthz``: the poll loop beat recently (a wedged loop gets the pod restarted).
``/readyz``: partitions are assigned, the model store answered its last call and no sink is
failing (a failed flush makes it false until a flush succeeds; the loop keeps beating meanwhile,
so ``/healthz`` stays true while the worker waits for storage to come back).
Both answer JSON that says why.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Health:
    """Updated by the pipeline's threads, read by the HTTP server's; guarded by one lock."""

    def __init__(self, max_silence_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._max_silence_s = max_silence_s
        self._clock = clock
        self._lock = threading.Lock()
        # Starting counts as a beat, so a worker that is still setting up is not killed.
        self._last_beat = clock()
        self._assigned = False
        self._models_ok: bool | None = None
        self._models_detail = "not contacted yet"
        self._sinks_ok = True
        self._sinks_detail = "ok"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        with self._lock:
            self._last_beat = self._clock()

    def set_assigned(self, assigned: bool) -> None:
        with self._lock:
            self._assigned = assigned

    def set_models_ok(self, ok: bool, detail: str = "ok") -> None:
        with self._lock:
            self._models_ok, self._models_detail = ok, detail

    def set_sinks_ok(self, ok: bool, detail: str = "ok") -> None:
        """``detail`` names the failing sink and its error."""
        with self._lock:
            self._sinks_ok, self._sinks_detail = ok, detail

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            silence = self._clock() - self._last_beat
        alive = silence <= self._max_silence_s
        return alive, {"alive": alive, "loop_silence_s": round(silence, 3)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            assigned, models_ok, detail = self._assigned, self._models_ok, self._models_detail
            sinks_ok, sinks_detail = self._sinks_ok, self._sinks_detail
        ready = assigned and models_ok is True and sinks_ok
        return ready, {
            "ready": ready,
            "partitions_assigned": assigned,
            "model_store": detail,
            "sinks": sinks_detail,
        }

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve the probes on a daemon thread; returns the bound port (0 picks a free one)."""
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rdqc-health", daemon=True
        )
        self._thread.start()
        return int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    probes = {"/healthz": health.liveness, "/readyz": health.readiness}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            probe = probes.get(self.path.split("?", 1)[0])
            if probe is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such probe: {self.path}"})
                return
            ok, body = probe()
            self._reply(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would drown the worker's own logs."""

    return Handler
