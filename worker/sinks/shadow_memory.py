"""An in-memory shadow sink for tests and demos: best effort like the real ones."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from worker.errors import SinkError
from worker.sinks.shadow_entry import ShadowEntry


class MemoryShadowSink:
    """``entries`` holds what was written. Faults to inject: ``fail_writes`` (the next writes
    raise SinkError) and ``hold_writes`` (writes wait until ``release_writes``, like a hung
    store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._released = threading.Event()
        self._released.set()
        self.entries: list[ShadowEntry] = []

    def fail_writes(self, count: int) -> None:
        with self._lock:
            self._failures = count

    def hold_writes(self) -> None:
        self._released.clear()

    def release_writes(self) -> None:
        self._released.set()

    def setup(self) -> None:
        """Nothing to connect."""

    def write(self, entries: Sequence[ShadowEntry]) -> None:
        self._released.wait()
        with self._lock:
            if self._failures:
                self._failures -= 1
                raise SinkError("MemoryShadowSink: injected write failure")
            self.entries += entries

    def close(self) -> None:
        """Nothing to release."""
