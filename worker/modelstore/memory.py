"""An in-memory model store: product line -> LoadedModel, with hot swaps, for tests and demos.

It behaves like CachingModelStore where the pipeline can tell: ``publish`` stages a version the
way uploading a new ``current.json`` does (a product line that is not resident yet gets it on
its next ``get``, a resident one at the next ``refresh``); a resident model keeps serving
whatever happens to the store; a version that cannot be loaded or has no calibration is never
resident; ``get`` may block.

Faults to inject, per product line: ``break_line`` (its published version cannot be loaded,
until another is published), ``fail_loads`` (the store is unreachable for the next loads),
``hold_loads`` (loads wait, like a slow download, until ``release_loads``) and ``unpublish``
(the pointer is deleted).

Shadow candidates, like ``shadow.json`` beside ``current.json``: ``start_shadow`` publishes a
version without promoting it and names it the line's candidate, ``stop_shadow`` ends the test,
``promote`` makes a known version current and ends a shadow test of it, as ``rdqc models
promote`` does. ``break_shadow`` makes the candidate's loads fail until another is named.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from rdcore.artifacts.artifact import LoadedModel
from worker.errors import ModelLoadError, UnknownProductLine
from worker.ports import ModelPointer, ModelSwap


class MemoryModelStore:
    def __init__(self, models: Mapping[str, LoadedModel] | None = None) -> None:
        self._lock = threading.Lock()
        self._published: dict[str, LoadedModel] = dict(models or {})
        self._live: dict[str, LoadedModel] = {}
        self._broken: dict[str, str] = {}
        self._unreachable: Counter[str] = Counter()
        self._held: dict[str, threading.Event] = {}
        self.refresh_calls = 0
        self.load_attempts: Counter[str] = Counter()  # loads that got past a hold
        # Every version published or staged, by (line, version): what ``load`` can fetch.
        self._versions = {(line, m.version): m for line, m in self._published.items()}
        self._shadows: dict[str, LoadedModel] = {}
        self._broken_shadows: dict[str, str] = {}
        self.shadow_load_attempts: Counter[str] = Counter()

    def publish(self, product_line: str, loaded: LoadedModel) -> None:
        with self._lock:
            self._published[product_line] = loaded
            self._versions[product_line, loaded.version] = loaded
            self._broken.pop(product_line, None)

    def start_shadow(self, product_line: str, candidate: LoadedModel) -> None:
        with self._lock:
            self._versions[product_line, candidate.version] = candidate
            self._shadows[product_line] = candidate
            self._broken_shadows.pop(product_line, None)

    def stop_shadow(self, product_line: str) -> None:
        with self._lock:
            self._shadows.pop(product_line, None)

    def promote(self, product_line: str, version: str) -> None:
        with self._lock:
            self._published[product_line] = self._versions[product_line, version]
            self._broken.pop(product_line, None)
            shadow = self._shadows.get(product_line)
            if shadow is not None and shadow.version == version:
                del self._shadows[product_line]

    def break_shadow(self, product_line: str, message: str = "injected load failure") -> None:
        """Loading the line's candidate fails until another candidate is named."""
        with self._lock:
            self._broken_shadows[product_line] = message

    def unpublish(self, product_line: str) -> None:
        with self._lock:
            self._published.pop(product_line, None)

    def break_line(self, product_line: str, message: str = "injected load failure") -> None:
        """Loading the published version of ``product_line`` fails until another is published."""
        with self._lock:
            self._broken[product_line] = message

    def fail_loads(self, product_line: str, count: int) -> None:
        """The next ``count`` loads of ``product_line`` fail as if the store were unreachable."""
        with self._lock:
            self._unreachable[product_line] = count

    def hold_loads(self, product_line: str) -> None:
        """Loads of ``product_line`` wait until ``release_loads``, like a slow download."""
        with self._lock:
            self._held.setdefault(product_line, threading.Event())

    def release_loads(self, product_line: str) -> None:
        with self._lock:
            held = self._held.pop(product_line, None)
        if held is not None:
            held.set()

    def get(self, product_line: str) -> LoadedModel:
        with self._lock:
            live = self._live.get(product_line)
            if live is not None:
                return live
            held = self._held.get(product_line)
        if held is not None:
            held.wait()
        with self._lock:
            self.load_attempts[product_line] += 1
            if self._unreachable[product_line] > 0:
                self._unreachable[product_line] -= 1
                raise ModelLoadError(
                    f"model pointer of {product_line!r} unreadable: injected: store unreachable"
                )
            published = self._published.get(product_line)
            if published is None:
                raise UnknownProductLine(f"no model is published for product line {product_line!r}")
            problem = self._unloadable(product_line, published)
            if problem is not None:
                raise ModelLoadError(
                    f"model {product_line}/{published.version} cannot be loaded: {problem}"
                )
            self._live[product_line] = published
            return published

    def refresh(self) -> list[ModelSwap]:
        with self._lock:
            self.refresh_calls += 1
            swaps = []
            for line, live in self._live.items():
                published = self._published.get(line)
                # No pointer, or a version that cannot load: the live model keeps serving.
                if published is None or published is live or self._unloadable(line, published):
                    continue
                swaps.append(ModelSwap(line, live.version, published.version))
                self._live[line] = published
            return swaps

    def versions(self) -> dict[str, str]:
        with self._lock:
            return {line: loaded.version for line, loaded in self._live.items()}

    def shadow(self, product_line: str) -> ModelPointer | None:
        with self._lock:
            candidate = self._shadows.get(product_line)
        if candidate is None:
            return None
        return ModelPointer(
            candidate.version, candidate.manifest.weights_sha256, candidate.manifest.digest()
        )

    def load(self, product_line: str, pointer: ModelPointer) -> LoadedModel:
        with self._lock:
            self.shadow_load_attempts[product_line] += 1
            found = self._versions.get((product_line, pointer.version))
            if found is None:
                problem: str | None = f"version {pointer.version} is not in the store"
            else:
                problem = self._broken_shadows.get(product_line) or self._unloadable(
                    product_line, found, shadow=True
                )
            if found is None or problem is not None:
                raise ModelLoadError(
                    f"model {product_line}/{pointer.version} cannot be loaded: {problem}"
                )
            return found

    def _unloadable(
        self, product_line: str, published: LoadedModel, *, shadow: bool = False
    ) -> str | None:
        """Why the version would fail to load, like CachingModelStore; or None."""
        if not shadow and product_line in self._broken:
            return self._broken[product_line]
        if published.manifest.calibration is None:
            return f"model {product_line}/{published.version} has no calibration"
        return None
