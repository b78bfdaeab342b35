"""Models and workers: each line's live and shadow versions with their recent history (the
model store, docs/contracts.md §4) and the live workers (heartbeats, §2).

The store is read at most once per ``ttl_s`` (every page and API call may ask), and what was
read last is kept, so the pages still list the lines while the store is unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rdcore.errors import RdcoreError
from worker.dashboard.errors import BackendUnavailable
from worker.errors import WorkerError
from worker.heartbeat.record import Heartbeat
from worker.heartbeat.stores import HeartbeatStore
from worker.modelstore.registry import ModelRegistry

HISTORY_SHOWN = 10


@dataclass(frozen=True)
class LineModels:
    product_line: str
    current: dict[str, Any] | None  # {"version", "digest"}; None: nothing published
    shadow: dict[str, Any] | None  # {"version", "digest", "since"}
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ModelsReader:
    def __init__(
        self,
        registry: ModelRegistry,
        heartbeats: HeartbeatStore,
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._heartbeats = heartbeats
        self._ttl_s = ttl_s
        self._clock = clock
        self._lines: list[LineModels] = []
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def lines(self) -> list[LineModels]:
        """Every line in the store; raises BackendUnavailable when it cannot be read (the last
        good answer stays available from ``known_lines``)."""
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                self._lines = self._read()
                self._read_at = now
            return self._lines

    def known_lines(self) -> list[str]:
        """The lines of the last good read, without touching the store."""
        return [line.product_line for line in self._lines]

    def workers(self) -> list[Heartbeat]:
        try:
            return sorted(self._heartbeats.live(), key=lambda h: h.worker_id)
        except WorkerError as exc:
            raise BackendUnavailable("scores", f"heartbeats: {exc}") from exc

    def ping(self) -> None:
        self.lines()

    def _read(self) -> list[LineModels]:
        try:
            return [self._line(name) for name in sorted(self._registry.product_lines())]
        except (WorkerError, RdcoreError) as exc:
            raise BackendUnavailable("models", str(exc)) from exc

    def _line(self, product_line: str) -> LineModels:
        pointer = self._registry.pointer(product_line)
        shadowed = self._registry.shadowed(product_line)
        history = self._registry.history(product_line)[-HISTORY_SHOWN:]
        return LineModels(
            product_line=product_line,
            current=None
            if pointer is None
            else {"version": pointer.version, "digest": pointer.digest},
            shadow=None
            if shadowed is None
            else {"version": shadowed.version, "digest": shadowed.digest, "since": shadowed.since},
            history=[entry.to_dict() for entry in reversed(history)],
        )
