"""Anomaly maps and image scores from teacher and student features, for any batch size.

Per scale, 1 - cosine similarity along channels; each scale's map is upsampled bilinearly
(align_corners=True) to the input size, the scales are summed (or multiplied), the result is
smoothed with a Gaussian of sigma 4 (33 taps) and the image score is the maximum of the smoothed
map. Training, evaluation, serving and ONNX export all use this one module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdcore.config import MapMode

TRUNCATE = 4.0


def gaussian_kernel1d(sigma: float, truncate: float = TRUNCATE) -> Tensor:
    """The normalized 1-D kernel that ``scipy.ndimage.gaussian_filter`` uses for ``sigma``."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(torch.float32)


def symmetric_index(size: int, radius: int) -> Tensor:
    """Source indices of a row padded by ``radius`` on each side in scipy's 'reflect' mode.

    scipy's 'reflect' repeats the edge sample (d c b a | a b c d | d c b a); torch's 'reflect'
    padding does not (it is scipy's 'mirror'), so the padding is done by gathering.
    """
    period = 2 * size
    positions = torch.arange(-radius, size + radius) % period
    return torch.where(positions < size, positions, period - 1 - positions)


def scale_maps(teacher: list[Tensor], student: list[Tensor], size: tuple[int, int]) -> list[Tensor]:
    """Per scale, 1 - cos(teacher, student) along channels, upsampled to ``size`` (B, H, W)."""
    maps = []
    for t, s in zip(teacher, student, strict=True):
        distance = 1.0 - F.cosine_similarity(t, s, dim=1)
        up = F.interpolate(distance.unsqueeze(1), size=size, mode="bilinear", align_corners=True)
        maps.append(up.squeeze(1))
    return maps


class GaussianBlur(nn.Module):
    """Separable Gaussian smoothing of (B, H, W) maps, equal to scipy's reflect-mode filter."""

    kernel: Tensor

    def __init__(self, sigma: float, truncate: float = TRUNCATE) -> None:
        super().__init__()
        self.sigma = sigma
        kernel = gaussian_kernel1d(sigma, truncate) if sigma > 0 else torch.ones(1)
        self.radius = (kernel.numel() - 1) // 2
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, maps: Tensor) -> Tensor:
        if self.radius == 0:
            return maps
        height, width = maps.shape[-2:]
        x = maps.unsqueeze(1)
        kernel = self.kernel.to(x.dtype)
        rows = symmetric_index(height, self.radius).to(x.device)
        cols = symmetric_index(width, self.radius).to(x.device)
        x = F.conv2d(x.index_select(2, rows), kernel.view(1, 1, -1, 1))
        x = F.conv2d(x.index_select(3, cols), kernel.view(1, 1, 1, -1))
        return x.squeeze(1)


class AnomalyMap(nn.Module):
    """Combines the per-scale distances into one smoothed map per image and its max score."""

    def __init__(self, mode: MapMode = "sum", sigma: float = 4.0) -> None:
        super().__init__()
        if mode not in ("sum", "mul"):
            raise ValueError(f"mode must be 'sum' or 'mul', got {mode!r}")
        self.mode = mode
        self.blur = GaussianBlur(sigma)

    def forward(
        self, teacher: list[Tensor], student: list[Tensor], size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        maps = scale_maps(teacher, student, size)
        combined = maps[0]
        for m in maps[1:]:
            combined = combined * m if self.mode == "mul" else combined + m
        smoothed = self.blur(combined.float())
        return smoothed, smoothed.flatten(1).amax(dim=1)
