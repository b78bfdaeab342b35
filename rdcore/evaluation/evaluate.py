"""Evaluating an artifact on an MVTec AD layout, and recalibrating an artifact from good images."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.artifacts.artifact import MANIFEST_FILE, Manifest, load_artifact
from rdcore.calibration import DEFAULT_QUANTILE, calibrate, f1_optimal_threshold
from rdcore.data.folders import folder_images
from rdcore.data.images import read_image
from rdcore.data.mvtec import MVTecLayout, load_mask
from rdcore.errors import DatasetError
from rdcore.evaluation.file_scoring import resolve_device, score_images
from rdcore.evaluation.metrics import aupro, image_auroc, pixel_auroc, pro_official
from rdcore.evaluation.report import EvaluationData, calibrated_range, write_report

AUPRO_FPR_LIMIT = 0.3


def _masks_at(layout: MVTecLayout, size: int) -> npt.NDArray[np.bool_]:
    """Every test mask, checked against its image and resized (nearest) to the map size."""
    masks = np.zeros((len(layout.test), size, size), dtype=bool)
    for index, sample in enumerate(layout.test):
        if sample.is_anomalous:
            mask = load_mask(sample, read_image(sample.path).shape)
            resized = cv2.resize(
                mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST
            )
            masks[index] = resized > 0
    return masks


def evaluate(
    artifact_dir: Path,
    mvtec_root: Path,
    report_dir: Path,
    *,
    batch_size: int = 16,
    device: str = "auto",
) -> dict[str, float]:
    """Score the test split of ``mvtec_root``, write a report to ``report_dir``, return metrics.

    Pixel metrics are computed at the model's image size: the anomaly maps are at that size and
    the ground-truth masks are resized to it with nearest-neighbour interpolation.
    """
    loaded = load_artifact(artifact_dir, resolve_device(device))
    layout = MVTecLayout(mvtec_root)
    labels = np.array([int(s.is_anomalous) for s in layout.test])
    if labels.all() or not labels.any():
        raise DatasetError(
            f"{mvtec_root / 'test'}: evaluation needs both good and defective test images"
        )
    paths = [s.path for s in layout.test]
    scores, maps = score_images(
        loaded.model, loaded.preprocess, paths, batch_size=batch_size, device=device
    )
    masks = _masks_at(layout, maps.shape[-1])
    metrics: dict[str, float] = {
        "image_auroc": image_auroc(labels, scores),
        "pixel_auroc": pixel_auroc(masks, maps),
        f"aupro_{AUPRO_FPR_LIMIT}": aupro(masks, maps, AUPRO_FPR_LIMIT),
        "pro_official": pro_official(masks, maps),
        "f1_threshold": f1_optimal_threshold(scores, labels),
        "test_good": int((labels == 0).sum()),
        "test_defective": int(labels.sum()),
    }
    calibration = loaded.manifest.calibration
    if calibration is not None:
        flagged = scores >= calibration.threshold
        metrics |= {
            "threshold": calibration.threshold,
            "false_positives": int((flagged & (labels == 0)).sum()),
            "false_negatives": int((~flagged & (labels == 1)).sum()),
        }
        value_range = calibrated_range(calibration)
    else:
        value_range = (float(maps.min()), float(maps.max()))
    data = EvaluationData(
        paths=paths,
        labels=labels,
        scores=scores,
        maps=maps,
        masks=masks,
        threshold=None if calibration is None else calibration.threshold,
        f1_threshold=metrics["f1_threshold"],
    )
    manifest = loaded.manifest
    title = f"{manifest.product_line} {manifest.model_version} on {mvtec_root}"
    write_report(report_dir, data, metrics, title=title, value_range=value_range)
    return metrics


def _replace_manifest(directory: Path, manifest: Manifest) -> None:
    """Rewrite manifest.json atomically: a reader sees the old or the new one, never a mix."""
    text = json.dumps(manifest.to_dict(), indent=2, allow_nan=False) + "\n"
    path = directory / MANIFEST_FILE
    fd, temp_name = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp makes the file private; keep whoever could read the old manifest reading it.
        shutil.copymode(path, temp_name)
        Path(temp_name).replace(path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


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
    _replace_manifest(artifact_dir, manifest)
    return manifest
