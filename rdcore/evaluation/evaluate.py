"""Evaluating an artifact on an MVTec AD layout: metrics, and a report folder to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.artifacts.artifact import load_artifact
from rdcore.calibration import f1_optimal_threshold
from rdcore.data.images import read_image
from rdcore.data.mvtec import MVTecLayout, load_mask
from rdcore.data.overlay import heatmap_range
from rdcore.device import resolve_device
from rdcore.errors import DatasetError
from rdcore.evaluation.file_scoring import score_images
from rdcore.evaluation.metrics import aupro, image_auroc, pixel_auroc, pro_official
from rdcore.evaluation.report import EvaluationData, write_report

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
        value_range = heatmap_range(calibration)
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
