"""The live models of the product lines a worker sees: loaded on first use, hot-swapped.

A model is fetched once into the local download cache (modelstore/cache.py), where it is checked
against the pointer's weights SHA-256 and manifest digest, then loaded, checked for a usable
calibration, warmed up with one forward pass and kept in a bounded LRU. So a resident model is
always ready to score. ``refresh`` reloads a line whose pointer's digest differs from the served
model's, and loads the new version completely before it swaps it in, so frames are always
scored by a ready model, and a version that fails to load leaves the old one serving.

``get`` and ``refresh`` block for as long as a download takes: the pipeline calls them on the
model lifecycle's loader threads (modelstore/lifecycle.py), which also decides when a failed
load is tried again.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch

from rdcore.artifacts.artifact import LoadedModel, load_artifact
from rdcore.artifacts.manifest import check_safe_name
from rdcore.errors import ArtifactError
from worker.errors import ModelLoadError, UnknownProductLine
from worker.modelstore.cache import DownloadCache, warm_up
from worker.modelstore.layout import pointer_names
from worker.ports import ModelPointer, ModelRepository, ModelSwap

log = structlog.get_logger(__name__)

# Loads of different product lines run in parallel, of one product line one at a time; a fixed
# set of locks keeps that bounded however many product-line names frames carry.
_LOAD_LOCKS = 64


@dataclass(frozen=True)
class ModelLoadEvent:
    """One attempt to load a model version, for metrics."""

    product_line: str
    version: str | None  # None when the pointer could not be read
    duration_s: float
    error: str | None  # None when the model loaded

    @property
    def ok(self) -> bool:
        return self.error is None


class CachingModelStore:
    def __init__(
        self,
        repository: ModelRepository,
        cache_dir: str | Path,
        device: str | torch.device = "cpu",
        *,
        max_resident: int = 8,
        warmup: bool = True,
        on_load: Callable[[ModelLoadEvent], None] | None = None,
    ) -> None:
        if max_resident <= 0:
            raise ValueError(f"max_resident must be > 0, got {max_resident}")
        self._repository = repository
        self._downloads = DownloadCache(repository, cache_dir)
        self._device = device
        self._max_resident = max_resident
        self._warmup = warmup
        self._on_load = on_load
        self._lock = threading.Lock()
        self._load_locks = [threading.Lock() for _ in range(_LOAD_LOCKS)]
        self._resident: OrderedDict[str, LoadedModel] = OrderedDict()

    def get(self, product_line: str) -> LoadedModel:
        try:
            check_safe_name("product_line", product_line)
        except ArtifactError as exc:
            raise UnknownProductLine(str(exc)) from exc
        model = self._resident_model(product_line)
        if model is not None:
            return model
        with self._load_lock(product_line):
            # Another thread may have loaded it while this one waited.
            model = self._resident_model(product_line)
            if model is not None:
                return model
            model = self._load(product_line, self._pointer(product_line))
        with self._lock:
            self._resident[product_line] = model
            while len(self._resident) > self._max_resident:
                evicted, old = self._resident.popitem(last=False)
                log.info("model_evicted", product_line=evicted, version=old.version)
        return model

    def refresh(self) -> list[ModelSwap]:
        with self._lock:
            resident = dict(self._resident)
        swaps = []
        for product_line, current in resident.items():
            try:
                pointer = self._repository.pointer(product_line)
            except Exception as exc:
                log.warning("model_pointer_unreadable", product_line=product_line, error=str(exc))
                continue
            if pointer is None:
                log.warning("model_pointer_missing_keeps_serving", product_line=product_line)
                continue
            if pointer_names(pointer, current.manifest):
                continue
            swap = self._swap(product_line, current, pointer)
            if swap is not None:
                swaps.append(swap)
        return swaps

    def versions(self) -> dict[str, str]:
        with self._lock:
            return {line: model.version for line, model in self._resident.items()}

    def shadow(self, product_line: str) -> ModelPointer | None:
        return self._repository.shadow(product_line)

    def load(self, product_line: str, pointer: ModelPointer) -> LoadedModel:
        """A shadow candidate: loaded like a live model, but never resident or swapped in.

        No load lock: a candidate's download must not hold up the line's live model, and the
        download cache already copes with two loads of one version at once.
        """
        return self._load(product_line, pointer)

    def _swap(
        self, product_line: str, current: LoadedModel, pointer: ModelPointer
    ) -> ModelSwap | None:
        with self._load_lock(product_line):
            try:
                new = self._load(product_line, pointer)
            except ModelLoadError as exc:
                log.error(
                    "model_swap_failed_old_keeps_serving",
                    product_line=product_line,
                    serving=current.version,
                    failed=pointer.version,
                    error=str(exc),
                )
                return None
            with self._lock:
                if product_line not in self._resident:
                    return None  # evicted meanwhile: the next get loads the pointer's version
                old = self._resident[product_line]
                self._resident[product_line] = new
        log.info("model_swapped", product_line=product_line, old=old.version, new=new.version)
        return ModelSwap(product_line, old.version, new.version)

    def _resident_model(self, product_line: str) -> LoadedModel | None:
        with self._lock:
            model = self._resident.get(product_line)
            if model is not None:
                self._resident.move_to_end(product_line)
            return model

    def _load_lock(self, product_line: str) -> threading.Lock:
        return self._load_locks[zlib.crc32(product_line.encode()) % _LOAD_LOCKS]

    def _pointer(self, product_line: str) -> ModelPointer:
        started = time.monotonic()
        try:
            pointer = self._repository.pointer(product_line)
        except Exception as exc:
            self._report(product_line, None, started, str(exc))
            raise ModelLoadError(f"model pointer of {product_line!r} unreadable: {exc}") from exc
        if pointer is None:
            raise UnknownProductLine(f"no model is published for product line {product_line!r}")
        return pointer

    def _load(self, product_line: str, pointer: ModelPointer) -> LoadedModel:
        """Fetch, verify, load and warm up one version; any failure is a ModelLoadError."""
        started = time.monotonic()
        try:
            directory = self._downloads.fetch(product_line, pointer)
            model = load_artifact(directory, self._device)
            _ = model.calibration  # raises for a model that cannot normalize its scores
            if self._warmup:
                warm_up(model)
        except Exception as exc:
            # Whatever broke (storage, a corrupt file, torch), the caller needs one answer.
            self._report(product_line, pointer.version, started, str(exc))
            raise ModelLoadError(
                f"model {product_line}/{pointer.version} cannot be loaded: {exc}"
            ) from exc
        self._report(product_line, pointer.version, started, None)
        log.info("model_loaded", product_line=product_line, version=model.version)
        return model

    def _report(
        self, product_line: str, version: str | None, started: float, error: str | None
    ) -> None:
        if self._on_load is not None:
            self._on_load(ModelLoadEvent(product_line, version, time.monotonic() - started, error))
