"""Recalibrating an artifact in place from good images: a new threshold, the manifest rewritten."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

from rdcore.artifacts.artifact import load_artifact
from rdcore.artifacts.manifest import MANIFEST_FILE, Manifest
from rdcore.calibration import DEFAULT_QUANTILE, calibrate
from rdcore.data.folders import folder_images
from rdcore.device import resolve_device
from rdcore.evaluation.file_scoring import score_images


def calibrate_artifact(
    artifact_dir: Path,
    good_folder: Path,
    *,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 16,
    device: str = "auto",
) -> Manifest:
    """Recalibrate an artifact in place from the good images in ``good_folder``.

    Only the manifest's calibration changes; the weights (and their recorded hash) stay as
    they are. Use images the model was not trained on: training images score optimistically low.
    """
    loaded = load_artifact(artifact_dir, resolve_device(device))
    paths = folder_images(good_folder)
    scores, _ = score_images(
        loaded.model, loaded.preprocess, paths, batch_size=batch_size, device=device
    )
    manifest = dataclasses.replace(loaded.manifest, calibration=calibrate(scores, quantile))
    # Whoever could read the old manifest keeps reading the new one.
    old_mode = stat.S_IMODE((artifact_dir / MANIFEST_FILE).stat().st_mode)
    manifest.write(artifact_dir, mode=old_mode)
    return manifest
