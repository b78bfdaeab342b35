"""The shadow candidate of each product line a worker serves: found, loaded, dropped, never
waited for.

The candidate of a line is what ``ModelStore.shadow(line)`` names (``{line}/shadow.json``). It is
read for the lines in use on ``poll`` (every ``RDQC_MODELS__POLL_S``, with the model refresh)
and as soon as a line comes into use or changes version, so a candidate appears, changes and
disappears without a restart. Only the version the pointer names is ever used: when the pointer
moves, the old candidate stops at once and the new one starts once loaded; when it is removed
(the test stopped, or the candidate promoted), shadow scoring of the line stops.

Candidates load like live models (fetched, verified, calibrated, warmed up) on loader threads
of their own, so a candidate's download never holds up a live model's. A candidate that fails to
load is tried again with backoff and jitter while the pointer names it; each failure is counted
(``rdqc_shadow_load_failures_total``) and a streak logs one warning. Nothing else is touched:
not readiness, not the live model, not the line's frames. A pointer that cannot be read leaves
everything as it was.

State is the loop thread's alone; loader threads only run store calls and return their results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

import structlog

from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import Manifest
from worker.backoff import backoff_s
from worker.observability.prometheus import Metrics
from worker.ports import ModelPointer, ModelStore

log = structlog.get_logger(__name__)

# Per line: the candidate's pointer, None when no shadow test runs, or why it was not read.
PointerReads = dict[str, ModelPointer | Exception | None]


@dataclass(frozen=True)
class Candidate:
    loaded: LoadedModel
    digest: str  # Manifest.digest(): the version's identity in shadow entries

    @property
    def version(self) -> str:
        return self.loaded.version


@dataclass
class _Pending:
    """A candidate the pointer names that is not ready: loading, or backing off after failures."""

    pointer: ModelPointer
    loading: Future[Candidate] | None = None
    failures: int = 0
    retry_at: float = 0.0


class ShadowCandidates:
    def __init__(
        self,
        models: ModelStore,
        metrics: Metrics,
        *,
        retry_first_s: float = 1.0,
        retry_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = models
        self._metrics = metrics
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        # Two threads: reading the pointers goes on while a candidate downloads.
        self._loader = ThreadPoolExecutor(2, thread_name_prefix="rdqc-shadow-loader")
        self._lines: set[str] = set()
        self._poll_due = False
        self._polling: Future[PointerReads] | None = None
        self._ready: dict[str, Candidate] = {}
        # Read by the heartbeat thread: replaced whole whenever _ready changes, never mutated.
        self._manifests: Mapping[str, Manifest] = MappingProxyType({})
        self._pending: dict[str, _Pending] = {}
        self._unreadable: set[str] = set()  # lines whose pointer failed to read, in a streak

    def candidate(self, product_line: str) -> Candidate | None:
        return self._ready.get(product_line)

    def manifests(self) -> Mapping[str, Manifest]:
        """The manifest of each line's ready candidate; safe to read from any thread."""
        return self._manifests

    def watch(self, product_line: str) -> None:
        """The line is in use, with a new live version: read its pointer on the next turn."""
        self._lines.add(product_line)
        self._poll_due = True

    def poll(self) -> None:
        """Read the pointers of every line in use on the next turn, unless a read still runs."""
        self._poll_due = True

    def settle(self) -> None:
        """Take in finished pointer reads and loads, start those that are due; every turn."""
        now = self._clock()
        if self._polling is not None and self._polling.done():
            finished, self._polling = self._polling, None
            self._take(finished.result())
        for line, pending in list(self._pending.items()):
            self._advance(line, pending, now)
        if self._poll_due and self._polling is None and self._lines:
            self._poll_due = False
            self._polling = self._loader.submit(self._read_pointers, sorted(self._lines))

    def close(self) -> None:
        """A load still running finishes on its own; nothing waits for it."""
        self._loader.shutdown(wait=False, cancel_futures=True)

    def _read_pointers(self, lines: Iterable[str]) -> PointerReads:
        """Loader thread: each line's pointer, or why it could not be read."""
        reads: PointerReads = {}
        for line in lines:
            try:
                reads[line] = self._models.shadow(line)
            except Exception as exc:
                reads[line] = exc
        return reads

    def _load(self, product_line: str, pointer: ModelPointer) -> Candidate:
        """Loader thread."""
        loaded = self._models.load(product_line, pointer)
        return Candidate(loaded, loaded.manifest.digest())

    def _take(self, reads: PointerReads) -> None:
        for line, read in reads.items():
            if isinstance(read, Exception):
                if line not in self._unreadable:
                    self._unreadable.add(line)
                    log.warning(
                        "shadow pointer unreadable; shadow testing goes on as it was",
                        product_line=line,
                        error_class=type(read).__name__,
                        error=str(read),
                    )
                continue
            self._unreadable.discard(line)
            if read is None:
                self._end(line, "shadow test ended")
            elif not self._names_current(line, read):
                self._end(line, "shadow candidate replaced")
                log.info("shadow candidate named", product_line=line, version=read.version)
                self._pending[line] = _Pending(read)

    def _names_current(self, line: str, pointer: ModelPointer) -> bool:
        """The pointer names the candidate that is ready or being loaded."""
        ready = self._ready.get(line)
        if ready is not None:
            if pointer.digest is not None:
                return ready.digest == pointer.digest
            # A pointer written before contract v2 names no digest (docs/contracts.md §4).
            manifest = ready.loaded.manifest
            return (manifest.model_version, manifest.weights_sha256) == (
                pointer.version,
                pointer.sha256,
            )
        pending = self._pending.get(line)
        return pending is not None and pending.pointer == pointer

    def _end(self, line: str, why: str) -> None:
        """Stop shadow scoring of the line now: its candidate is no longer the pointer's."""
        pending = self._pending.pop(line, None)
        ready = self._ready.pop(line, None)
        if ready is not None:
            self._metrics.shadow_version_info.remove(line, ready.version)
            self._publish_manifests()
        version = ready.version if ready else pending.pointer.version if pending else None
        if version is not None:
            log.info(why, product_line=line, version=version)

    def _advance(self, line: str, pending: _Pending, now: float) -> None:
        if pending.loading is None:
            if now >= pending.retry_at:
                pending.loading = self._loader.submit(self._load, line, pending.pointer)
            return
        if not pending.loading.done():
            return
        finished, pending.loading = pending.loading, None
        try:
            candidate = finished.result()
        except Exception as exc:
            self._failed(line, pending, exc, now)
            return
        del self._pending[line]
        self._ready[line] = candidate
        self._publish_manifests()
        self._metrics.shadow_version_info.labels(line, candidate.version).set(1)
        log.info(
            "shadow candidate loaded; frames are scored with it besides the live model",
            product_line=line,
            version=candidate.version,
            digest=candidate.digest,
            failed_attempts=pending.failures,
        )

    def _publish_manifests(self) -> None:
        self._manifests = MappingProxyType(
            {line: candidate.loaded.manifest for line, candidate in self._ready.items()}
        )

    def _failed(self, line: str, pending: _Pending, exc: Exception, now: float) -> None:
        pending.failures += 1
        delay = backoff_s(pending.failures, self._retry_first_s, self._retry_max_s)
        pending.retry_at = now + delay
        self._metrics.shadow_load_failures.labels(line).inc()
        fields = {
            "product_line": line,
            "version": pending.pointer.version,
            "error_class": type(exc).__name__,
            "error": str(exc),
            "attempts": pending.failures,
            "retry_in_s": round(delay, 2),
        }
        if pending.failures == 1:
            log.warning(
                "shadow candidate cannot be loaded; retried, live model unaffected", **fields
            )
        else:
            log.debug("shadow candidate still cannot be loaded", **fields)
