"""Publishing a trained artifact to a model repository, so workers pick it up."""

from __future__ import annotations

from pathlib import Path

from rdcore.artifacts.artifact import verify_artifact
from rdcore.errors import ArtifactError
from worker.ports import ModelPointer, ModelRepository


def publish_artifact(
    repository: ModelRepository, artifact_dir: str | Path, product_line: str
) -> ModelPointer:
    """Verify the artifact, upload it as the version its manifest names, then point to it.

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
    pointer = ModelPointer(manifest.model_version, manifest.weights_sha256)
    repository.publish(str(directory), product_line, pointer.version, pointer.sha256)
    return pointer
