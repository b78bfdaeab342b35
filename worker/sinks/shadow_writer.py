"""Shadow entries to their sink on a thread of their own, so nothing else ever waits for them.

The shadow sink is outside the commit path: the loop thread hands entries over and moves on.
Writes run one at a time on the writer thread, with at most one more waiting; entries that
arrive while both places are taken (the sink is slow or hung) are dropped and counted, like
entries whose write failed. The sink is set up on the first write and again after a failed
setup, so a shadow store that is down at start costs entries, never the worker's start.
One failure streak logs one warning, and its end one line.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from worker.observability.prometheus import Metrics
from worker.ports import ShadowSink
from worker.sinks.shadow_entry import ShadowEntry

log = structlog.get_logger(__name__)

_MAX_OUTSTANDING = 2  # the write running and one waiting


class ShadowWriter:
    """``write`` and ``close`` are called by the loop thread; the rest runs on the writer thread."""

    def __init__(self, sink: ShadowSink, metrics: Metrics) -> None:
        self._sink = sink
        self._metrics = metrics
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="rdqc-shadow-writer")
        self._outstanding: deque[Future[None]] = deque()
        self._set_up = False
        self._failures = 0  # consecutive failed writes, on the writer thread

    def write(self, entries: Sequence[ShadowEntry]) -> None:
        if not entries:
            return
        while self._outstanding and self._outstanding[0].done():
            self._outstanding.popleft()
        if len(self._outstanding) >= _MAX_OUTSTANDING:
            self._lost(entries)
            log.debug("shadow sink busy; entries dropped", entries=len(entries))
            return
        self._outstanding.append(self._thread.submit(self._write, list(entries)))

    def close(self) -> None:
        """Writes already handed over finish on the writer thread, then the sink is closed."""
        self._thread.submit(self._sink.close)
        self._thread.shutdown(wait=False)

    def _write(self, entries: list[ShadowEntry]) -> None:
        try:
            if not self._set_up:
                self._sink.setup()
                self._set_up = True
            self._sink.write(entries)
        except Exception as exc:
            # Whatever the sink raised, the shadow test loses these entries and nothing else.
            self._failures += 1
            self._lost(entries)
            if self._failures == 1:
                log.warning(
                    "shadow sink failed; its entries are dropped",
                    error_class=type(exc).__name__,
                    error=str(exc),
                    entries=len(entries),
                )
            return
        if self._failures:
            log.info("shadow sink writes again", failed_writes=self._failures)
            self._failures = 0

    def _lost(self, entries: Sequence[ShadowEntry]) -> None:
        for line, count in Counter(e.meta.product_line for e in entries).items():
            self._metrics.shadow_write_failures.labels(line).inc(count)
