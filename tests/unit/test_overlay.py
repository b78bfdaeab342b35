"""Heatmap overlays: fixed colour scale, resized to the image, blended by alpha."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rdcore.calibration import calibrate
from rdcore.data.overlay import heatmap_overlay, heatmap_range

IMAGE = np.full((32, 48, 3), 200, dtype=np.uint8)


def _jet(level: int) -> np.ndarray:
    bgr = cv2.applyColorMap(np.array([[level]], dtype=np.uint8), cv2.COLORMAP_JET)
    return np.asarray(bgr[0, 0, ::-1])


def test_alpha_zero_returns_the_image() -> None:
    overlay = heatmap_overlay(IMAGE, np.random.default_rng(0).random((8, 8)), 0.0, 1.0, alpha=0.0)

    np.testing.assert_array_equal(overlay, IMAGE)


def test_colours_follow_the_fixed_scale_and_clip() -> None:
    low = heatmap_overlay(IMAGE, np.full((8, 8), -5.0), 0.0, 1.0, alpha=1.0)
    high = heatmap_overlay(IMAGE, np.full((8, 8), 7.0), 0.0, 1.0, alpha=1.0)

    assert low.shape == IMAGE.shape
    assert low.dtype == np.uint8
    assert (low == _jet(0)).all()
    assert (high == _jet(255)).all()


def test_map_is_resized_to_the_image_and_blended() -> None:
    anomaly_map = np.zeros((4, 4), dtype=np.float32)
    anomaly_map[:, 2:] = 1.0

    overlay = heatmap_overlay(IMAGE, anomaly_map, 0.0, 1.0, alpha=0.5)

    expected_left = np.round(0.5 * IMAGE[0, 0] + 0.5 * _jet(0))
    expected_right = np.round(0.5 * IMAGE[0, 0] + 0.5 * _jet(255))
    np.testing.assert_allclose(overlay[16, 0], expected_left, atol=1)
    np.testing.assert_allclose(overlay[16, 47], expected_right, atol=1)


def test_empty_colour_range_is_refused() -> None:
    with pytest.raises(ValueError, match="vmax"):
        heatmap_overlay(IMAGE, np.zeros((4, 4)), 1.0, 1.0)


def test_heatmap_range_puts_the_threshold_at_mid_scale() -> None:
    calibration = calibrate([0.2, 0.3, 0.35, 0.4, 0.6], quantile=0.99)

    vmin, vmax = heatmap_range(calibration)

    assert (vmin + vmax) / 2 == pytest.approx(calibration.threshold)
    assert vmin == pytest.approx(calibration.min)  # the calmest good image is blue


def test_heatmap_range_of_constant_good_scores_is_not_empty() -> None:
    calibration = calibrate([0.5, 0.5, 0.5], quantile=0.99)

    vmin, vmax = heatmap_range(calibration)

    assert vmin < calibration.threshold < vmax
