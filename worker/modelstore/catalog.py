"""What ``rdqc models list`` and ``show`` report about a line's versions, read from the registry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rdcore.artifacts.manifest import Manifest
from rdcore.errors import ArtifactError
from worker.modelstore.layout import Shadowed, pointer_names
from worker.modelstore.registry import ModelRegistry, RegistryError
from worker.ports import ModelPointer

# Evaluation metrics worth a column, in this order, when a manifest records them.
KEY_METRICS = ("image_auroc", "pixel_auroc", "aupro_0.3", "pro_official")


@dataclass(frozen=True)
class VersionSummary:
    """One version in ``rdqc models list``; a version whose manifest cannot be read has only
    its name, its status and the ``problem``."""

    product_line: str
    version: str
    current: bool
    shadow: bool
    created_at: str | None = None
    backbone: str | None = None
    image_size: int | None = None
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the key metrics recorded
    digest: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_versions(registry: ModelRegistry, product_line: str) -> list[VersionSummary]:
    """The published versions of a line, oldest first; broken ones last."""
    current = registry.pointer(product_line)
    shadowed = registry.shadowed(product_line)
    summaries = []
    for version in registry.version_names(product_line):
        try:
            manifest = registry.manifest(product_line, version)
        except RegistryError:
            continue  # no manifest: an upload cut off or under way, not a published version
        except ArtifactError as exc:
            summaries.append(_broken(product_line, version, current, shadowed, str(exc)))
            continue
        summaries.append(_summary(manifest, current, shadowed))
    return sorted(summaries, key=lambda s: (s.created_at is None, s.created_at or "", s.version))


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
        current=pointer_names(current, manifest),
        shadow=shadowed is not None and pointer_names(shadowed.pointer, manifest),
        created_at=manifest.created_at,
        backbone=manifest.model.backbone,
        image_size=manifest.model.image_size,
        threshold=None if manifest.calibration is None else manifest.calibration.threshold,
        metrics={name: metrics[name] for name in KEY_METRICS if name in metrics},
        digest=manifest.digest(),
    )


def _broken(
    product_line: str,
    version: str,
    current: ModelPointer | None,
    shadowed: Shadowed | None,
    problem: str,
) -> VersionSummary:
    # Without a manifest there is no digest: a pointer naming the version by name is enough.
    return VersionSummary(
        product_line=product_line,
        version=version,
        current=current is not None and current.version == version,
        shadow=shadowed is not None and shadowed.version == version,
        problem=problem,
    )
