"""The model of each product line as the pipeline uses it: loaded off the loop, waited for.

The loop thread asks ``model(line)`` for each product line it has frames of, and the answer
never blocks: the ready model; None while it is not ready, so the frames wait; or
UnknownProductLine when no model is published for the line, so they are dead-lettered. Loads
and refreshes run on a few loader threads, so one product line's download never holds up the
others, and a model is handed out only once it is loaded, verified and warmed up.

Any other load failure (store unreachable, a corrupt download, an artifact without a usable
calibration) is waited out: the line's frames keep waiting and the load is tried again with
exponential backoff and jitter, but only while frames of the line wait. During such a streak
the readiness probe names the line and its error, ``rdqc_model_unavailable{product_line}`` is
1, and one error is logged; publishing a good version ends it at the next attempt. A load that
runs longer than ``_SLOW_LOAD_S`` is reported the same way, so a hung download is not silent.
"No model is published" is remembered for ``unknown_ttl_s``, so a flood of frames of an unknown
line costs one pointer read per ttl, not one per batch.

State is the loop thread's alone: loader threads only run store calls and return their results.
One thing crosses threads: ``preprocess_by_line``, written here and read by the decode jobs on
the CPU pool so they can preprocess with the model last used for the line. Each side makes
single dict operations, which the GIL keeps atomic. ``manifests_in_use`` is read by the
heartbeat thread: a mapping replaced whole, never changed in place.

With shadow testing on, each line's shadow candidate is kept beside its live model by
ShadowCandidates (modelstore/shadow_candidates.py): it is only told when lines come into use and
when to poll, and it never touches the live models, the line's frames or readiness.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

import structlog

from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import Manifest
from rdcore.data.preprocess import Preprocess
from worker.backoff import backoff_s
from worker.errors import UnknownProductLine
from worker.modelstore.shadow_candidates import Candidate, ShadowCandidates
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.ports import ModelStore, ModelSwap

log = structlog.get_logger(__name__)

_SLOW_LOAD_S = 60.0
_MAX_REMEMBERED_UNKNOWN = 1024


@dataclass
class _Waiting:
    """A product line whose model is not ready: loading, or backing off after failures."""

    loading: Future[LoadedModel] | None = None
    started: float = 0.0  # when the current load began
    failures: int = 0  # consecutive failed loads
    retry_at: float = 0.0


class ModelLifecycle:
    def __init__(
        self,
        models: ModelStore,
        metrics: Metrics,
        health: Health,
        *,
        loader_threads: int = 4,
        retry_first_s: float = 1.0,
        retry_max_s: float = 30.0,
        unknown_ttl_s: float = 10.0,
        shadow_testing: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = models
        self._metrics = metrics
        self._health = health
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._unknown_ttl_s = unknown_ttl_s
        self._clock = clock
        self._loader = ThreadPoolExecutor(loader_threads, thread_name_prefix="rdqc-model-loader")
        self._ready: dict[str, LoadedModel] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._unknown: OrderedDict[str, tuple[float, str]] = OrderedDict()  # until, message
        self._unavailable: dict[str, str] = {}  # product line -> why, during a failure streak
        self._refreshing: Future[list[ModelSwap]] | None = None
        self._preprocess: dict[str, Preprocess] = {}
        self._versions: dict[str, str] = {}
        self._manifests: Mapping[str, Manifest] = MappingProxyType({})
        self._shadows: ShadowCandidates | None = None
        if shadow_testing:
            self._shadows = ShadowCandidates(
                models, metrics, retry_first_s=retry_first_s, retry_max_s=retry_max_s, clock=clock
            )

    @property
    def preprocess_by_line(self) -> Mapping[str, Preprocess]:
        """The preprocessing of the model last used per product line (read by the CPU pool)."""
        return self._preprocess

    def shadow_manifests_in_use(self) -> Mapping[str, Manifest]:
        """The manifest of each line's ready shadow candidate; safe to read from any thread."""
        return MappingProxyType({}) if self._shadows is None else self._shadows.manifests()

    def manifests_in_use(self) -> Mapping[str, Manifest]:
        """The manifest of the model last used per product line; safe to read from any thread."""
        return self._manifests

    def model(self, product_line: str) -> LoadedModel | None:
        """The ready model, or None while it loads or is being waited for; never blocks.

        Raises UnknownProductLine when no model is published for the line.
        """
        loaded = self._ready.get(product_line)
        if loaded is None:
            loaded = self._advance(product_line)
        if loaded is not None:
            self._in_use(product_line, loaded)
        return loaded

    def abandon(self, product_line: str) -> None:
        """No frames of the line wait any more (their partitions were revoked): stop trying."""
        if self._waiting.pop(product_line, None) is not None:
            self._end_streak(product_line)

    def refresh(self) -> None:
        """Start swapping in newly published versions, unless the last refresh still runs."""
        if self._refreshing is None:
            self._refreshing = self._loader.submit(self._models.refresh)
        if self._shadows is not None:
            self._shadows.poll()

    def settle(self) -> None:
        """Take in a refresh that finished; called by the loop thread on every turn."""
        if self._shadows is not None:
            self._shadows.settle()
        if self._refreshing is None or not self._refreshing.done():
            return
        finished, self._refreshing = self._refreshing, None
        try:
            swaps = finished.result()
        except Exception as exc:
            log.warning(
                "model refresh failed; current models keep serving",
                error_class=type(exc).__name__,
                error=str(exc),
            )
            return
        for swap in swaps:
            # By line, not by version name: a swap to another digest may keep the name (a
            # version rewritten in place before versions were immutable).
            self._ready.pop(swap.product_line, None)
            log.info(
                "model swapped",
                product_line=swap.product_line,
                old_version=swap.old_version,
                new_version=swap.new_version,
            )
        self._forget_replaced()
        self._report_health()

    def close(self) -> None:
        """A load still running finishes on its own; nothing waits for it."""
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._shadows is not None:
            self._shadows.close()

    def shadow_candidate(self, product_line: str) -> Candidate | None:
        """The candidate the line's frames are scored with besides; None without a shadow test."""
        return None if self._shadows is None else self._shadows.candidate(product_line)

    def _advance(self, product_line: str) -> LoadedModel | None:
        now = self._clock()
        self._raise_if_unknown(product_line, now)
        waiting = self._waiting.setdefault(product_line, _Waiting())
        if waiting.loading is None:
            if now >= waiting.retry_at:
                waiting.loading = self._loader.submit(self._models.get, product_line)
                waiting.started = now
            return None
        if not waiting.loading.done():
            if now - waiting.started > _SLOW_LOAD_S and product_line not in self._unavailable:
                log.warning("model load is slow; its frames wait", product_line=product_line)
                self._unavailable_now(product_line, f"still loading after {_SLOW_LOAD_S:.0f} s")
            return None
        finished, waiting.loading = waiting.loading, None
        try:
            loaded = finished.result()
        except UnknownProductLine as exc:
            del self._waiting[product_line]
            self._end_streak(product_line)
            self._remember_unknown(product_line, str(exc), now)
            raise
        except Exception as exc:
            self._failed(product_line, waiting, exc, now)
            return None
        del self._waiting[product_line]
        if self._end_streak(product_line):
            log.info(
                "model available again; its frames are scored",
                product_line=product_line,
                model_version=loaded.version,
                failed_attempts=waiting.failures,
            )
        self._ready[product_line] = loaded
        self._forget_replaced()
        return loaded

    def _failed(self, product_line: str, waiting: _Waiting, exc: Exception, now: float) -> None:
        waiting.failures += 1
        delay = backoff_s(waiting.failures, self._retry_first_s, self._retry_max_s)
        waiting.retry_at = now + delay
        fields = {
            "product_line": product_line,
            "error_class": type(exc).__name__,
            "error": str(exc),
            "attempts": waiting.failures,
            "retry_in_s": round(delay, 2),
        }
        if waiting.failures == 1:
            log.error("model unavailable; its frames wait and the load is retried", **fields)
        else:
            log.debug("model still unavailable", **fields)
        self._unavailable_now(product_line, f"{type(exc).__name__}: {exc}")

    def _unavailable_now(self, product_line: str, why: str) -> None:
        if product_line not in self._unavailable:
            self._metrics.model_unavailable.labels(product_line).set(1)
        self._unavailable[product_line] = why
        self._report_health()

    def _end_streak(self, product_line: str) -> bool:
        """The line is no longer waited for; True if it was unavailable until now."""
        if self._unavailable.pop(product_line, None) is None:
            self._report_health()
            return False
        self._metrics.model_unavailable.labels(product_line).set(0)
        self._report_health()
        return True

    def _report_health(self) -> None:
        if not self._unavailable:
            self._health.set_models_ok(True)
            return
        reasons = "; ".join(f"{line}: {why}" for line, why in sorted(self._unavailable.items()))
        self._health.set_models_ok(False, f"frames wait for models: {reasons}")

    def _raise_if_unknown(self, product_line: str, now: float) -> None:
        remembered = self._unknown.get(product_line)
        if remembered is None:
            return
        until, message = remembered
        if now < until:
            raise UnknownProductLine(message)
        del self._unknown[product_line]

    def _remember_unknown(self, product_line: str, message: str, now: float) -> None:
        self._unknown[product_line] = (now + self._unknown_ttl_s, message)
        self._unknown.move_to_end(product_line)
        while len(self._unknown) > _MAX_REMEMBERED_UNKNOWN:
            self._unknown.popitem(last=False)

    def _forget_replaced(self) -> None:
        """Drop ready models the store swapped or evicted; the next use asks the store again."""
        resident = self._models.versions()
        for line, loaded in list(self._ready.items()):
            if resident.get(line) != loaded.version:
                del self._ready[line]

    def _in_use(self, product_line: str, loaded: LoadedModel) -> None:
        """A version change is logged and shown where it takes effect."""
        self._preprocess[product_line] = loaded.preprocess
        if self._manifests.get(product_line) is not loaded.manifest:
            self._manifests = MappingProxyType({**self._manifests, product_line: loaded.manifest})
        previous = self._versions.get(product_line)
        if previous != loaded.version:
            self._versions[product_line] = loaded.version
            if self._shadows is not None:
                # A new line, or a swap that may be a promotion ending the shadow test.
                self._shadows.watch(product_line)
            self._metrics.set_model_version(product_line, previous, loaded.version)
            log.info(
                "model in use",
                product_line=product_line,
                model_version=loaded.version,
                previous_version=previous,
            )
