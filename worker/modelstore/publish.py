"""Publishing a trained artifact to the model store, so workers pick it up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rdcore.artifacts.artifact import verify_artifact
from rdcore.errors import ArtifactError
from worker.modelstore.history import HistoryEntry
from worker.modelstore.registry import ModelRegistry


@dataclass(frozen=True)
class Published:
    product_line: str
    version: str
    sha256: str
    digest: str
    uploaded: bool  # False: the store held this very version already
    promoted: HistoryEntry | None  # the pointer change; None when current.json did not move


def publish_artifact(
    registry: ModelRegistry, artifact_dir: str | Path, product_line: str, *, promote: bool = True
) -> Published:
    """Verify the artifact, upload it as the version its manifest names and, unless told not
    to, point ``current.json`` at it.

    The product line must be the one the artifact was trained for: serving a model on another
    line's frames would score them against the wrong idea of "normal".
    """
    directory = Path(artifact_dir)
    manifest = verify_artifact(directory)
    if manifest.product_line != product_line:
        raise ArtifactError(
            f"{directory} is a model of product line {manifest.product_line!r}, not "
            f"{product_line!r}; publish it under its own product line or retrain"
        )
    if manifest.calibration is None:
        # Workers would wait for a usable version of the line, scoring none of its frames.
        raise ArtifactError(
            f"{directory} has no calibration, so workers could not turn its scores into "
            "verdicts; run `rdqc calibrate` on it first"
        )
    uploaded = registry.upload(directory, manifest)
    version = manifest.model_version
    promoted = registry.promote(product_line, version, action="publish") if promote else None
    return Published(
        product_line, version, manifest.weights_sha256, manifest.digest(), uploaded, promoted
    )
