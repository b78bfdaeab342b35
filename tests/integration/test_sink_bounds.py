"""Sinks never hang: against an S3 endpoint that accepts connections and never answers, a
heatmap flush fails with SinkError within its bound, and the client does not retry on its own.

``SilentServer`` is a wedged store as the network sees it: TCP connects, the request is read,
no byte comes back. No stack needed, so it runs wherever the integration tests run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.s3_client import s3_client
from worker.settings_sections import S3Settings
from worker.sinks.s3_heatmaps import S3HeatmapSink

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 1.0
FLUSH_TIMEOUT_S = 2.0
ATTEMPTS = 2


class SilentServer:
    """Accepts TCP connections, reads what comes, never answers; counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                self._open.append(connection)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._open:
                connection.close()


@pytest.fixture
def silent_s3() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_heatmap_flush_against_a_silent_store_fails_in_time(silent_s3: SilentServer) -> None:
    settings = S3Settings(
        endpoint=f"http://127.0.0.1:{silent_s3.port}",
        access_key=SecretStr("key"),
        secret_key=SecretStr("secret-key"),
        connect_timeout_s=1,
        read_timeout_s=READ_TIMEOUT_S,
    )
    sink = S3HeatmapSink(
        s3_client(settings), "heatmaps", attempts=ATTEMPTS, flush_timeout_s=FLUSH_TIMEOUT_S
    )
    sink.add(FrameMeta("cam-1-000001", "caps", "cam-1", 1_795_000_000_000), b"\x89PNG")

    started = time.monotonic()
    with pytest.raises(SinkError, match=r"1 uploads (still running|failed)"):
        sink.flush()
    assert time.monotonic() - started < FLUSH_TIMEOUT_S + 1.0

    # Each attempt ends at the read timeout: one connection per attempt, none from a retry
    # layer of the HTTP pool (minio's default pool would try 5 times, 5 minutes each).
    started = time.monotonic()
    sink.close()  # waits for the upload's last attempt
    assert time.monotonic() - started < ATTEMPTS * (READ_TIMEOUT_S + 1.0)
    assert silent_s3.connections == ATTEMPTS


def test_setup_against_a_silent_store_fails_in_seconds(silent_s3: SilentServer) -> None:
    settings = S3Settings(
        endpoint=f"http://127.0.0.1:{silent_s3.port}", read_timeout_s=READ_TIMEOUT_S
    )
    sink = S3HeatmapSink(s3_client(settings), "heatmaps")

    started = time.monotonic()
    with pytest.raises(SinkError, match="bucket 'heatmaps'"):
        sink.setup()
    assert time.monotonic() - started < READ_TIMEOUT_S + 1.0
    assert silent_s3.connections == 1
    sink.close()
