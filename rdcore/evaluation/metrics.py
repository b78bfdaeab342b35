"""Anomaly detection metrics: image and pixel AUROC, pooled AUPRO, and RD4AD's per-image PRO.

Masks are boolean (N, H, W) arrays and maps float (N, H, W) arrays of the same shape. Ground-truth
regions are 8-connected, as both MVTec's evaluation code and skimage's ``measure.label`` (used
by RD4AD) define them. The evaluation extras (scikit-learn, scipy) are imported where used, so
training and scoring work without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from rdcore.errors import RdcoreError

EVAL_INSTALL_HINT = "pip install 'rdqc[eval]'"

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]
_EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


@contextmanager
def eval_extras() -> Iterator[None]:
    """Turn a missing evaluation dependency into an error that says how to install it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise RdcoreError(
            f"{exc.name} is needed for evaluation and reports; install it with {EVAL_INSTALL_HINT}"
        ) from exc


def _check_shapes(masks: BoolArray, maps: FloatArray) -> None:
    if masks.shape != maps.shape or masks.ndim != 3:
        raise ValueError(f"masks and maps must both be (N, H, W); got {masks.shape}, {maps.shape}")


def image_auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve of image scores; labels are 1 (anomalous) or 0 (normal)."""
    with eval_extras():
        from sklearn.metrics import roc_auc_score
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) != 2:
        raise ValueError("image AUROC needs both normal and anomalous images")
    return float(roc_auc_score(labels, np.asarray(scores)))


def pixel_auroc(masks: BoolArray, maps: FloatArray) -> float:
    """Area under the ROC curve of all pixels of all images, pooled."""
    _check_shapes(masks, maps)
    return image_auroc(masks.ravel(), maps.ravel())


def _trapezoid(x: FloatArray, y: FloatArray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _label_regions(masks: BoolArray) -> tuple[npt.NDArray[np.int64], int]:
    """Connected regions of every mask, numbered 1..R across the whole set (0 is background)."""
    with eval_extras():
        from scipy.ndimage import label
    labels = np.zeros(masks.shape, dtype=np.int64)
    count = 0
    for index, mask in enumerate(masks):
        regions, found = label(mask, structure=_EIGHT_CONNECTED)
        labels[index] = np.where(regions > 0, regions + count, 0)
        count += int(found)
    return labels, count


def pro_curve(masks: BoolArray, maps: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(FPR, PRO) at every distinct threshold, from (0, 0) to (1, 1), pooled over the set.

    At a threshold, FPR is the fraction of all normal pixels above it and PRO the mean, over all
    regions of all masks, of the fraction of the region above it. Computed exactly: each pixel
    adds 1/normal_pixels to FPR, or 1/(region_area * regions) to PRO, once it is above threshold.
    """
    _check_shapes(masks, maps)
    labels, regions = _label_regions(masks)
    normal = ~masks
    normal_count = int(normal.sum())
    if regions == 0 or normal_count == 0:
        raise ValueError("the PRO curve needs both anomalous regions and normal pixels")
    areas = np.bincount(labels.ravel(), minlength=regions + 1).astype(np.float64)
    pro_step = np.where(labels > 0, 1.0 / (areas[labels] * regions), 0.0).ravel()
    fpr_step = np.where(normal, 1.0 / normal_count, 0.0).ravel()
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fpr = np.cumsum(fpr_step[order])
    pro = np.cumsum(pro_step[order])
    # Pixels with equal scores cross any threshold together: keep the last of each run.
    last_of_run = np.append(scores[1:] != scores[:-1], True)
    fpr = np.concatenate([[0.0], np.minimum(fpr[last_of_run], 1.0)])
    pro = np.concatenate([[0.0], np.minimum(pro[last_of_run], 1.0)])
    return fpr, pro


def aupro(masks: BoolArray, maps: FloatArray, fpr_limit: float = 0.3) -> float:
    """Area under the pooled PRO curve for FPR in [0, fpr_limit], divided by fpr_limit (0..1)."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    fpr, pro = pro_curve(masks, maps)
    inside = fpr <= fpr_limit
    x, y = fpr[inside], pro[inside]
    if x[-1] < fpr_limit:
        # Close the area at the limit, on the straight line to the next point of the curve.
        after = int(np.argmax(~inside))
        x0, x1, y0, y1 = fpr[after - 1], fpr[after], pro[after - 1], pro[after]
        y_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        x, y = np.append(x, fpr_limit), np.append(y, y_limit)
    return _trapezoid(x, y) / fpr_limit


def _official_image_pro(mask: BoolArray, amap: FloatArray, num_thresholds: int) -> float:
    """RD4AD's ``compute_pro`` on one image; NaN where that code would fail or divide by zero."""
    labels, regions = _label_regions(mask[np.newaxis])
    normal_count = int((~mask).sum())
    low, high = float(amap.min()), float(amap.max())
    if regions == 0 or normal_count == 0 or high <= low:
        return float("nan")
    flat_labels = labels[0].ravel()
    areas = np.bincount(flat_labels, minlength=regions + 1)[1:].astype(np.float64)
    normal = ~mask.ravel()
    scores = amap.ravel()
    fprs, pros = [], []
    for threshold in np.arange(low, high, (high - low) / num_thresholds):
        above = scores > threshold
        covered = np.bincount(flat_labels[above], minlength=regions + 1)[1:]
        pros.append(float(np.mean(covered / areas)))
        fprs.append(float(np.logical_and(above, normal).sum()) / normal_count)
    fpr, pro = np.asarray(fprs), np.asarray(pros)
    # RD4AD keeps thresholds with FPR < 0.3 and rescales their FPRs by the largest one kept, so
    # its curve spans [smallest kept / largest kept, 1] rather than [0, 1].
    kept = fpr < 0.3
    if kept.sum() < 2 or fpr[kept].max() == 0.0:
        return float("nan")
    fpr, pro = fpr[kept] / fpr[kept].max(), pro[kept]
    # Thresholds ascend, so FPR descends; reversed, it ascends with ties kept in the same order.
    return _trapezoid(fpr[::-1], pro[::-1])


def pro_official(masks: BoolArray, maps: FloatArray, num_thresholds: int = 200) -> float:
    """The PRO score printed by RD4AD's test.py: per anomalous image, then averaged.

    Each image with a non-empty mask gets its own 200 thresholds spanning its own map, its own
    FPR (over its own normal pixels) and its own rescaled area; images whose curve is undefined
    (no normal pixels, a constant map, fewer than two points under FPR 0.3) are left out of the
    mean. Normal images do not take part. Reported for comparison with the paper's numbers only:
    ``aupro`` is the standard metric.
    """
    _check_shapes(masks, maps)
    values = [
        _official_image_pro(mask, amap, num_thresholds)
        for mask, amap in zip(masks, maps, strict=True)
        if mask.any()
    ]
    defined = [v for v in values if not np.isnan(v)]
    if not defined:
        raise ValueError("no anomalous image with a defined per-image PRO curve")
    return float(np.mean(defined))
