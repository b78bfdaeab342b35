"""Metrics on small hand-made cases whose answers can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from rdcore.evaluation.metrics import aupro, image_auroc, pixel_auroc, pro_curve, pro_official


def test_image_auroc_perfect_inverted_and_tied() -> None:
    labels = [0, 0, 1, 1]
    assert image_auroc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert image_auroc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert image_auroc(labels, [0.5, 0.5, 0.5, 0.5]) == 0.5
    # One of four normal/anomalous pairs is ordered wrongly.
    assert image_auroc(labels, [0.1, 0.7, 0.6, 0.9]) == 0.75


def test_image_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        image_auroc([1, 1], [0.1, 0.2])


def test_pixel_auroc_perfect_localization() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 1:3, 1:3] = True
    maps = masks.astype(float) + 0.1
    assert pixel_auroc(masks, maps) == 1.0


def _two_region_case() -> tuple[np.ndarray, np.ndarray]:
    """One 1x10 image: region A (2 px) scores 0.9, region B (2 px) 0.5, six normal pixels.

    Normal pixels score 0.7 and 0.3 (the two between the regions) and 0.1 (four).
    """
    mask = np.array([[1, 1, 0, 0, 1, 1, 0, 0, 0, 0]], dtype=bool)[np.newaxis]
    amap = np.array([[0.9, 0.9, 0.7, 0.3, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]])[np.newaxis]
    return mask, amap


def test_pro_curve_points() -> None:
    mask, amap = _two_region_case()
    fpr, pro = pro_curve(mask, amap)
    # Thresholds 0.9, 0.7, 0.5, 0.3, 0.1: A then B are found, normals cross one by one.
    np.testing.assert_allclose(fpr, [0, 0, 1 / 6, 1 / 6, 2 / 6, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1.0, 1.0, 1.0])


def test_aupro_known_value() -> None:
    mask, amap = _two_region_case()
    # PRO is 0.5 for FPR in (0, 1/6], then 1.0 up to the 0.3 limit:
    # (0.5 * 1/6 + 1.0 * (0.3 - 1/6)) / 0.3
    expected = (0.5 / 6 + (0.3 - 1 / 6)) / 0.3
    assert aupro(mask, amap, 0.3) == pytest.approx(expected)
    # Over the full range the trapezoid to (1, 1) adds nothing new: area = 1 - 0.5/6.
    assert aupro(mask, amap, 1.0) == pytest.approx(1 - 0.5 / 6)


def test_aupro_perfect_and_region_weighting() -> None:
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 0:4, 0:4] = True  # a large region, found
    masks[1, 6, 6] = True  # a one-pixel region, found too
    maps = masks.astype(float)
    assert aupro(masks, maps) == pytest.approx(1.0)
    # Missing the one-pixel region (it scores below every normal pixel) costs as much as
    # missing the 16-pixel one would: PRO stays 0.5 until every normal pixel is a false positive.
    maps[1, 6, 6] = -1.0
    assert aupro(masks, maps) == pytest.approx(0.5)


def test_pro_official_per_image_mean() -> None:
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, 2:5, 2:5] = True
    masks[1, 6:9, 6:9] = True
    maps = np.random.default_rng(0).uniform(0.0, 0.5, size=(2, 10, 10))
    # Image 0 is perfectly localized, image 1 not at all (its region scores lowest).
    maps[0][masks[0]] = 1.0
    maps[1][masks[1]] = -1.0
    assert pro_official(masks[:1], maps[:1]) == pytest.approx(1.0)
    assert pro_official(masks[1:], maps[1:]) == pytest.approx(0.0)
    assert pro_official(masks, maps) == pytest.approx(0.5)


def test_pro_official_ignores_normal_images() -> None:
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, 2:5, 2:5] = True
    maps = np.random.default_rng(1).uniform(0.0, 0.5, size=(2, 10, 10))
    maps[0][masks[0]] = 1.0
    maps[1] = 100.0  # a normal image scoring high everywhere does not count
    assert pro_official(masks, maps) == pytest.approx(1.0)
