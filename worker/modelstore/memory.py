"""An in-memory model store: product line -> LoadedModel, with hot swaps, for tests and demos.

``publish`` stages a version the way uploading a new ``current.json`` does: a product line
that is not resident yet gets it on first ``get``, a resident one only at the next ``refresh``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from rdcore.artifacts.artifact import LoadedModel
from worker.errors import ModelLoadError, UnknownProductLine
from worker.ports import ModelSwap


class MemoryModelStore:
    def __init__(self, models: Mapping[str, LoadedModel] | None = None) -> None:
        self._lock = threading.Lock()
        self._published: dict[str, LoadedModel] = dict(models or {})
        self._live: dict[str, LoadedModel] = {}
        self._broken: dict[str, str] = {}
        self.refresh_calls = 0

    def publish(self, product_line: str, loaded: LoadedModel) -> None:
        with self._lock:
            self._published[product_line] = loaded

    def break_line(self, product_line: str, message: str = "injected load failure") -> None:
        """From now on, loading ``product_line`` raises ModelLoadError."""
        with self._lock:
            self._broken[product_line] = message

    def get(self, product_line: str) -> LoadedModel:
        with self._lock:
            if product_line in self._broken:
                raise ModelLoadError(f"{product_line}: {self._broken[product_line]}")
            live = self._live.get(product_line)
            if live is not None:
                return live
            published = self._published.get(product_line)
            if published is None:
                raise UnknownProductLine(f"no model is published for {product_line!r}")
            self._live[product_line] = published
            return published

    def refresh(self) -> list[ModelSwap]:
        with self._lock:
            self.refresh_calls += 1
            swaps = []
            for line, live in self._live.items():
                published = self._published[line]
                if published is not live:
                    swaps.append(ModelSwap(line, live.version, published.version))
                    self._live[line] = published
            return swaps

    def versions(self) -> dict[str, str]:
        with self._lock:
            return {line: loaded.version for line, loaded in self._live.items()}
