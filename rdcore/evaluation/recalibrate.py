"""Recalibrating an artifact from good images: a new threshold, as a new version or in place.

A published version never changes (its digest is its identity), so recalibrating one makes a
new artifact under a new version name that records where it came from; workers take it up
once it is published. Only a fresh artifact that was never published (``rdqc import-rd4ad
--calibrate-from``) is calibrated in place.
"""

from __future__ import annotations

import dataclasses
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from rdcore.artifacts.artifact import LoadedModel, load_artifact
from rdcore.artifacts.manifest import MANIFEST_FILE, WEIGHTS_FILE, Manifest, check_safe_name
from rdcore.calibration import DEFAULT_QUANTILE, Calibration, calibrate
from rdcore.data.folders import folder_images
from rdcore.device import resolve_device
from rdcore.errors import ArtifactError
from rdcore.evaluation.file_scoring import score_images
from rdcore.files import write_atomically


class Recalibrated(NamedTuple):
    directory: Path
    manifest: Manifest


# The suffix a default recalibrated version name gets; an earlier one is replaced, not stacked.
_CAL_SUFFIX = re.compile(r"-cal\d{8}T\d{6}Z$")


def recalibrated_version_name(version: str, now: datetime | None = None) -> str:
    """``{version}-cal{UTC yyyymmddThhmmssZ}``, e.g. ``v3-cal20261202T101500Z``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{_CAL_SUFFIX.sub('', version)}-cal{stamp}"


def recalibrate_as_new_version(
    artifact_dir: Path,
    good_folder: Path,
    output_dir: Path | None = None,
    *,
    new_version: str | None = None,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 16,
    device: str = "auto",
) -> Recalibrated:
    """Write a recalibrated copy of an artifact as a new version; the original is not touched.

    The copy has the same weights, a calibration from the good images in ``good_folder``, the
    version name ``new_version`` (default: ``recalibrated_version_name``), and records in
    ``training["recalibrated_from"]`` the version and digest it came from. It is written to
    ``output_dir`` (default: beside the original, named after the new version), weights first
    and manifest last, like every artifact.
    """
    loaded = load_artifact(artifact_dir, resolve_device(device))
    source = loaded.manifest
    version = new_version or recalibrated_version_name(source.model_version)
    check_safe_name("model_version", version)
    if version == source.model_version:
        raise ArtifactError(
            f"the recalibrated artifact needs a version name other than {version!r}: published "
            "versions never change"
        )
    target = output_dir or artifact_dir.parent / version
    if target.exists() and any(target.iterdir()):
        raise ArtifactError(f"{target} is not empty; choose another output folder")
    calibration = _calibration(loaded, good_folder, quantile, batch_size, device)
    manifest = dataclasses.replace(
        source,
        model_version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        calibration=calibration,
        training={
            **source.training,
            "recalibrated_from": {"version": source.model_version, "digest": source.digest()},
        },
    )
    write_atomically(target / WEIGHTS_FILE, artifact_dir / WEIGHTS_FILE)
    manifest.write(target)
    return Recalibrated(target, manifest)


def calibrate_artifact(
    artifact_dir: Path,
    good_folder: Path,
    *,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 16,
    device: str = "auto",
) -> Manifest:
    """Calibrate a fresh, never published artifact in place from the good images in
    ``good_folder``; only the manifest's calibration changes.

    Use images the model was not trained on: training images score optimistically low.
    """
    loaded = load_artifact(artifact_dir, resolve_device(device))
    calibration = _calibration(loaded, good_folder, quantile, batch_size, device)
    manifest = dataclasses.replace(loaded.manifest, calibration=calibration)
    # Whoever could read the old manifest keeps reading the new one.
    old_mode = stat.S_IMODE((artifact_dir / MANIFEST_FILE).stat().st_mode)
    manifest.write(artifact_dir, mode=old_mode)
    return manifest


def _calibration(
    loaded: LoadedModel, good_folder: Path, quantile: float, batch_size: int, device: str
) -> Calibration:
    paths = folder_images(good_folder)
    scores, _ = score_images(
        loaded.model, loaded.preprocess, paths, batch_size=batch_size, device=device
    )
    return calibrate(scores, quantile)
