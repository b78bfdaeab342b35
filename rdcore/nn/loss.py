"""The reverse-distillation training loss of the official code."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def reverse_distillation_loss(teacher: list[Tensor], student: list[Tensor]) -> Tensor:
    """Sum over scales of the batch mean of 1 - cos(teacher, student).

    Each sample's feature map is flattened to one C*H*W vector, so the similarity is global per
    image and scale (not per pixel, as in the anomaly map).
    """
    total: Tensor | None = None
    for t, s in zip(teacher, student, strict=True):
        term = (1.0 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no feature scales given")
    return total
