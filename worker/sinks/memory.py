"""In-memory sinks for tests and demos, with the durability contract of the real ones.

``add`` buffers; ``flush`` makes the buffer durable (visible in ``results``, ``objects`` or
``rejections``) or raises and keeps it, so a retried flush writes it then. Each sink can be
told to fail its next flushes with SinkError, or to push back once with SinkBackpressure.
"""

from __future__ import annotations

import threading

from worker.errors import SinkBackpressure, SinkError
from worker.frames import FrameMeta, FrameResult, Rejection


class _FlakyFlush:
    """Failure injection and bookkeeping shared by the memory sinks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._setup_failures = 0
        self._backpressure: float | None = None
        self.flush_calls = 0
        self.failed_flushes = 0
        self.is_set_up = False
        self.closed = False

    def fail_flushes(self, count: int) -> None:
        """The next ``count`` flushes raise SinkError and keep their buffer."""
        with self._lock:
            self._failures = count

    def backpressure_once(self, retry_after_s: float = 0.05) -> None:
        """The next flush raises SinkBackpressure and keeps its buffer."""
        with self._lock:
            self._backpressure = retry_after_s

    def fail_setups(self, count: int) -> None:
        """The next ``count`` setups raise SinkError, as a sink whose service is down does."""
        with self._lock:
            self._setup_failures = count

    def setup(self) -> None:
        with self._lock:
            if self._setup_failures:
                self._setup_failures -= 1
                raise SinkError(f"{type(self).__name__}: injected setup failure")
        self.is_set_up = True

    def close(self) -> None:
        self.closed = True

    def _check_flush(self) -> None:
        """Called with the lock held, before anything becomes durable."""
        self.flush_calls += 1
        if self._backpressure is not None:
            retry_after_s, self._backpressure = self._backpressure, None
            self.failed_flushes += 1
            raise SinkBackpressure(f"{type(self).__name__} is full", retry_after_s)
        if self._failures:
            self._failures -= 1
            self.failed_flushes += 1
            raise SinkError(f"{type(self).__name__}: injected flush failure")


class MemoryScoreSink(_FlakyFlush):
    def __init__(self) -> None:
        super().__init__()
        self._buffer: list[FrameResult] = []
        self.results: list[FrameResult] = []

    def add(self, result: FrameResult) -> None:
        with self._lock:
            self._buffer.append(result)

    def flush(self) -> None:
        with self._lock:
            self._check_flush()
            self.results += self._buffer
            self._buffer = []


class MemoryHeatmapSink(_FlakyFlush):
    def __init__(self) -> None:
        super().__init__()
        self._buffer: dict[str, bytes] = {}
        self.objects: dict[str, bytes] = {}

    def uri_for(self, meta: FrameMeta) -> str:
        return f"memory://{meta.product_line}/{meta.frame_id}.png"

    def add(self, meta: FrameMeta, png: bytes) -> str:
        uri = self.uri_for(meta)
        with self._lock:
            self._buffer[uri] = png
        return uri

    def flush(self) -> None:
        with self._lock:
            self._check_flush()
            self.objects.update(self._buffer)
            self._buffer = {}


class MemoryDeadLetterSink(_FlakyFlush):
    def __init__(self) -> None:
        super().__init__()
        self._buffer: list[Rejection] = []
        self.rejections: list[Rejection] = []

    def add(self, rejection: Rejection) -> None:
        with self._lock:
            self._buffer.append(rejection)

    def flush(self) -> None:
        with self._lock:
            self._check_flush()
            self.rejections += self._buffer
            self._buffer = []
