"""What ``rdqc models list`` and ``show`` report about a line's versions, read from the registry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rdcore.artifacts.manifest import Manifest
from worker.modelstore.layout import Shadowed, pointer_names
from worker.modelstore.registry import ModelRegistry
from worker.ports import ModelPointer

# Evaluation metrics worth a column, in this order, when a manifest records them.
KEY_METRICS = ("image_auroc", "pixel_auroc", "aupro_0.3", "pro_official")


@dataclass(frozen=True)
class VersionSummary:
    product_line: str
    version: str
    created_at: str
    backbone: str
    image_size: int
    threshold: float | None
    metrics: dict[str, float]  # the key metrics the manifest records
    digest: str
    current: bool
    shadow: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_versions(registry: ModelRegistry, product_line: str) -> list[VersionSummary]:
    """The published versions of a line, oldest first."""
    current = registry.pointer(product_line)
    shadowed = registry.shadowed(product_line)
    summaries = [
        _summary(manifest, current, shadowed) for manifest in registry.versions(product_line)
    ]
    return sorted(summaries, key=lambda s: (s.created_at, s.version))


def describe_version(registry: ModelRegistry, product_line: str, version: str) -> dict[str, Any]:
    """A version's manifest in short (no normal-score quantiles), and whether it serves."""
    manifest = registry.manifest(product_line, version)
    current = registry.pointer(product_line)
    shadowed = registry.shadowed(product_line)
    calibration = manifest.calibration
    return {
        "product_line": manifest.product_line,
        "version": manifest.model_version,
        "created_at": manifest.created_at,
        "package_version": manifest.package_version,
        "digest": manifest.digest(),
        "weights_sha256": manifest.weights_sha256,
        "model": manifest.model.to_dict(),
        "calibration": None
        if calibration is None
        else {
            "threshold": calibration.threshold,
            "quantile": calibration.quantile,
            "count": calibration.count,
            "min": calibration.min,
            "max": calibration.max,
        },
        "metrics": manifest.metrics,
        "training": manifest.training,
        "current": pointer_names(current, manifest),
        "shadow_since": shadowed.since
        if shadowed is not None and pointer_names(shadowed.pointer, manifest)
        else None,
    }


def _summary(
    manifest: Manifest, current: ModelPointer | None, shadowed: Shadowed | None
) -> VersionSummary:
    metrics = manifest.metrics or {}
    return VersionSummary(
        product_line=manifest.product_line,
        version=manifest.model_version,
        created_at=manifest.created_at,
        backbone=manifest.model.backbone,
        image_size=manifest.model.image_size,
        threshold=None if manifest.calibration is None else manifest.calibration.threshold,
        metrics={name: metrics[name] for name in KEY_METRICS if name in metrics},
        digest=manifest.digest(),
        current=pointer_names(current, manifest),
        shadow=shadowed is not None and pointer_names(shadowed.pointer, manifest),
    )
