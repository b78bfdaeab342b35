"""Anomaly heatmaps over the inspected image: one rendering and one colour scale for reports,
``rdqc score --overlays`` and the worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.data.images import RGBImage

if TYPE_CHECKING:  # rdcore.calibration imports torch; drawing an overlay does not need it
    from rdcore.calibration import Calibration


def heatmap_range(calibration: Calibration) -> tuple[float, float]:
    """The colour scale (vmin, vmax) of every heatmap of a model, with its threshold at mid-scale.

    It starts at the lowest peak score of the calibration's good images, so pixels scoring like
    the calmest good image are blue, the threshold is green, and anything beyond it turns yellow
    to red; the same score gets the same colour in every image of a product line.
    """
    span = max(calibration.threshold - calibration.min, calibration.scale)
    return calibration.threshold - span, calibration.threshold + span


def heatmap_overlay(
    image: RGBImage,
    anomaly_map: npt.NDArray[Any],
    vmin: float,
    vmax: float,
    alpha: float = 0.5,
) -> RGBImage:
    """Blend a JET-coloured anomaly map over ``image``; ``alpha`` is the heatmap's weight.

    The map is resized bilinearly to the image and mapped to colours between fixed ``vmin`` and
    ``vmax`` (clipped) rather than its own min and max, so one colour means one score across
    images: a good image stays blue instead of having its noise stretched to red.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if anomaly_map.ndim != 2:
        raise ValueError(f"expected a 2-D anomaly map, got shape {anomaly_map.shape}")
    if not np.isfinite(anomaly_map).all():
        raise ValueError("anomaly map contains NaN or infinite values")
    if not vmax > vmin:
        raise ValueError(f"vmax must exceed vmin, got vmin={vmin}, vmax={vmax}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    resized = cv2.resize(
        anomaly_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
    )
    levels = np.clip((resized - vmin) / (vmax - vmin), 0.0, 1.0)
    gray = np.round(levels * 255.0).astype(np.uint8)
    heatmap = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = cv2.addWeighted(np.ascontiguousarray(image), 1.0 - alpha, heatmap, alpha, 0.0)
    return np.asarray(blended, dtype=np.uint8)
