"""The live model of each product line as the pipeline uses it: health, version metric, logs.

Called by the pipeline's inference thread only, so a refresh never swaps a model under a running
batch. One thing crosses threads: ``preprocess_by_line``, written here and read by the decode
jobs on the CPU pool so they can preprocess with the model last used for the line. Each side
makes single dict operations, which the GIL keeps atomic.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from rdcore.artifacts.artifact import LoadedModel
from rdcore.data.preprocess import Preprocess
from rdcore.errors import ArtifactError
from worker.errors import ModelLoadError
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.ports import ModelStore

log = structlog.get_logger(__name__)


class ModelLifecycle:
    def __init__(self, models: ModelStore, metrics: Metrics, health: Health) -> None:
        self._models = models
        self._metrics = metrics
        self._health = health
        self._preprocess: dict[str, Preprocess] = {}
        self._versions: dict[str, str] = {}

    @property
    def preprocess_by_line(self) -> Mapping[str, Preprocess]:
        """The preprocessing of the model last used per product line (read by the CPU pool)."""
        return self._preprocess

    def model(self, product_line: str) -> LoadedModel:
        """The live model; a version change is logged and shown where it takes effect.

        Raises UnknownProductLine when none is published, ModelLoadError when it cannot load
        or cannot normalize its scores.
        """
        try:
            loaded = self._models.get(product_line)
            _ = loaded.calibration  # raises for a model that cannot normalize its scores
        except ModelLoadError as exc:
            self._health.set_models_ok(False, f"{product_line}: {exc}")
            raise
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from exc
        self._health.set_models_ok(True)
        self._preprocess[product_line] = loaded.preprocess
        previous = self._versions.get(product_line)
        if previous != loaded.version:
            self._versions[product_line] = loaded.version
            self._metrics.set_model_version(product_line, previous, loaded.version)
            log.info(
                "model in use",
                product_line=product_line,
                model_version=loaded.version,
                previous_version=previous,
            )
        return loaded

    def refresh(self) -> None:
        """Swap in newly published versions; on failure the current models keep serving."""
        try:
            swaps = self._models.refresh()
        except ModelLoadError as exc:
            self._health.set_models_ok(False, str(exc))
            log.warning("model refresh failed; current models keep serving", error=str(exc))
            return
        self._health.set_models_ok(True)
        for swap in swaps:
            log.info(
                "model swapped",
                product_line=swap.product_line,
                old_version=swap.old_version,
                new_version=swap.new_version,
            )
