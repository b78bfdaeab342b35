"""The anomaly map reproduces the official computation: cosine maps, bilinear, scipy's blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from rdcore.config import MapMode
from rdcore.nn.anomaly_map import AnomalyMap, GaussianBlur, gaussian_kernel1d

FEATURE_SHAPES = [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
SIZE = (64, 64)


def test_sigma_4_kernel_has_33_taps() -> None:
    kernel = gaussian_kernel1d(4.0)

    assert kernel.numel() == 33
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)


# 20x20 is smaller than twice the radius of 16: padding wraps around the reflection period.
@pytest.mark.parametrize("shape", [(256, 256), (40, 57), (20, 20)])
def test_blur_matches_scipy_reflect_including_borders(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random(shape).astype(np.float32)

    blurred = GaussianBlur(4.0)(torch.from_numpy(image).unsqueeze(0))[0].numpy()

    expected = gaussian_filter(image.astype(np.float64), sigma=4, mode="reflect")
    np.testing.assert_allclose(blurred, expected, rtol=0, atol=1e-5)


def _features(batch: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    teacher = [torch.randn(batch, *s, generator=generator) for s in FEATURE_SHAPES]
    student = [t + 0.5 * torch.randn(t.shape, generator=generator) for t in teacher]
    return teacher, student


def _reference_map(teacher: list[np.ndarray], student: list[np.ndarray], mode: str) -> np.ndarray:
    """One image, as the official test.py computes it: float64 numpy, then scipy's filter."""
    combined = np.ones(SIZE) if mode == "mul" else np.zeros(SIZE)
    for t, s in zip(teacher, student, strict=True):
        cosine = (t * s).sum(axis=0) / (np.linalg.norm(t, axis=0) * np.linalg.norm(s, axis=0))
        distance = torch.from_numpy(1.0 - cosine)[None, None]
        up = F.interpolate(distance, size=SIZE, mode="bilinear", align_corners=True)[0, 0]
        combined = combined * up.numpy() if mode == "mul" else combined + up.numpy()
    return np.asarray(gaussian_filter(combined, sigma=4, mode="reflect"))


@pytest.mark.parametrize("mode", ["sum", "mul"])
def test_map_and_score_match_reference(mode: MapMode) -> None:
    teacher, student = _features(batch=2, seed=0)

    maps, scores = AnomalyMap(mode, 4.0)(teacher, student, SIZE)

    assert maps.shape == (2, *SIZE)
    for i in range(2):
        expected = _reference_map(
            [t[i].double().numpy() for t in teacher], [s[i].double().numpy() for s in student], mode
        )
        np.testing.assert_allclose(maps[i].numpy(), expected, rtol=0, atol=1e-5)
        assert scores[i].item() == pytest.approx(float(expected.max()), abs=1e-5)
    assert torch.equal(scores, maps.flatten(1).amax(dim=1))


def test_batch_equals_single_images() -> None:
    teacher, student = _features(batch=3, seed=1)
    anomaly_map = AnomalyMap("sum", 4.0)

    maps, scores = anomaly_map(teacher, student, SIZE)

    for i in range(3):
        single_maps, single_scores = anomaly_map(
            [t[i : i + 1] for t in teacher], [s[i : i + 1] for s in student], SIZE
        )
        torch.testing.assert_close(maps[i : i + 1], single_maps, rtol=0, atol=1e-6)
        torch.testing.assert_close(scores[i : i + 1], single_scores, rtol=0, atol=1e-6)
