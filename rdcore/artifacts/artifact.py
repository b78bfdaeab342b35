"""The model artifact: one directory, the same on local disk and in object storage.

``model.safetensors`` holds the full state dict (teacher, bottleneck, decoder): weights only, so
loading never unpickles code. ``manifest.json`` records how to rebuild the model, its
calibration, how it was trained and the SHA-256 of the weights. The manifest is written last
and atomically, so a directory with a manifest is a complete artifact; the hash catches a
weights file that was truncated or altered afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import rdcore
from rdcore.artifacts.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    Manifest,
    check_safe_name,
    check_storable,
)
from rdcore.calibration import Calibration
from rdcore.data.preprocess import Preprocess
from rdcore.errors import ArtifactError
from rdcore.files import sha256_file, write_atomically
from rdcore.nn.model import ReverseDistillation, reverse_distillation
from rdcore.nn.weights import load_exactly


def save_artifact(
    model: ReverseDistillation,
    directory: Path,
    *,
    product_line: str,
    model_version: str,
    calibration: Calibration | None,
    training: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> Manifest:
    """Write ``model`` as an artifact into ``directory``; the manifest is written last."""
    check_safe_name("product_line", product_line)
    check_safe_name("model_version", model_version)
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    # Checked before anything is written, so a refused artifact leaves no files behind.
    check_storable("training", training)
    check_storable("metrics", metrics)
    check_storable("calibration", None if calibration is None else calibration.to_dict())
    directory.mkdir(parents=True, exist_ok=True)
    # An older manifest must not vouch for weights that are being replaced.
    (directory / MANIFEST_FILE).unlink(missing_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights_path = directory / WEIGHTS_FILE
    write_atomically(weights_path, lambda temp: save_file(state, str(temp)))
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line=product_line,
        model_version=model_version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        package_version=rdcore.__version__,
        model=model.config,
        calibration=calibration,
        training=dict(training),
        metrics=metrics,
        weights_sha256=sha256_file(weights_path),
    )
    manifest.write(directory)
    return manifest


def read_manifest(directory: Path) -> Manifest:
    return Manifest.read(directory)


def verify_artifact(directory: Path) -> Manifest:
    """The manifest, once the weights file is present and matches its recorded SHA-256."""
    manifest = read_manifest(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{weights_path} not found: the artifact is incomplete")
    actual = sha256_file(weights_path)
    if actual != manifest.weights_sha256:
        raise ArtifactError(
            f"{weights_path} does not match its manifest: sha256 {actual}, expected "
            f"{manifest.weights_sha256}; the file is corrupt or was altered"
        )
    return manifest


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact, loaded and ready to score: model in eval mode on its device."""

    model: ReverseDistillation
    manifest: Manifest
    preprocess: Preprocess
    directory: Path

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def calibration(self) -> Calibration:
        if self.manifest.calibration is None:
            raise ArtifactError(
                f"model {self.manifest.product_line}/{self.version} ({self.directory}) has no "
                "calibration; run `rdqc calibrate`"
            )
        return self.manifest.calibration


def load_artifact(directory: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Verify, rebuild and load an artifact; the loaded weights are bit-identical to the saved."""
    manifest = verify_artifact(directory)
    weights_path = directory / WEIGHTS_FILE
    # The teacher's weights come from the artifact, so nothing is downloaded.
    model = reverse_distillation(manifest.model, "random")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"cannot read {weights_path}: {exc}") from exc
    load_exactly(
        model,
        state,
        source=str(weights_path),
        target=f"its manifest's {manifest.model.backbone} model",
        error=ArtifactError,
    )
    model.to(device).eval()
    return LoadedModel(model, manifest, Preprocess.from_config(manifest.model), directory)
