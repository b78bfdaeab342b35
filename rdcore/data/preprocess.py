"""Preprocessing shared by training, evaluation and serving: resize, scale to [0, 1], normalize."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rdcore.config import ModelConfig
from rdcore.data.images import RGBImage


@dataclass(frozen=True)
class Preprocess:
    """Turns RGB uint8 images of any size into normalized (3, S, S) float tensors.

    Resizing is bilinear with antialiasing on tensors, which follows PIL's bilinear resize that
    the official code used.
    """

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_config(cls, config: ModelConfig) -> Preprocess:
        return cls(config.image_size, config.mean, config.std)

    def __call__(self, image: RGBImage) -> Tensor:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).float()
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.squeeze(0) / 255.0
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def batch(self, images: Sequence[RGBImage]) -> Tensor:
        return torch.stack([self(image) for image in images])
