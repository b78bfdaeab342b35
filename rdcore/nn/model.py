"""The reverse-distillation model: frozen teacher, one-class bottleneck, student decoder."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rdcore.config import ModelConfig
from rdcore.nn.anomaly_map import AnomalyMap
from rdcore.nn.bottleneck import OneClassBottleneck, bottleneck_for
from rdcore.nn.decoder import StudentDecoder, decoder_for
from rdcore.nn.teacher import Teacher, build_teacher


class FeaturePair(NamedTuple):
    """Teacher and restored student features, finest scale first."""

    teacher: list[Tensor]
    student: list[Tensor]


class AnomalyPrediction(NamedTuple):
    """Per image: the raw anomaly score (B,) and the smoothed anomaly map (B, H, W)."""

    score: Tensor
    anomaly_map: Tensor


class ReverseDistillation(nn.Module):
    """``features`` is the training path (the loss compares its two halves); ``forward`` scores."""

    def __init__(
        self,
        config: ModelConfig,
        teacher: Teacher,
        bottleneck: OneClassBottleneck,
        decoder: StudentDecoder,
    ) -> None:
        super().__init__()
        self.config = config
        self.teacher = teacher
        self.bottleneck = bottleneck
        self.decoder = decoder
        self.anomaly_map = AnomalyMap(config.map_mode, config.blur_sigma)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.bottleneck.parameters(), *self.decoder.parameters()]

    def features(self, images: Tensor) -> FeaturePair:
        self.teacher.eval()
        with torch.no_grad():
            teacher = self.teacher(images)
        student = self.decoder(self.bottleneck(teacher))
        return FeaturePair(teacher, student)

    def forward(self, images: Tensor) -> AnomalyPrediction:
        teacher, student = self.features(images)
        maps, scores = self.anomaly_map(teacher, student, (images.shape[-2], images.shape[-1]))
        return AnomalyPrediction(scores, maps)


def reverse_distillation(
    config: ModelConfig, teacher_weights: str | Path = "imagenet"
) -> ReverseDistillation:
    """Build a model whose bottleneck and decoder are sized from the teacher's reported shape."""
    teacher = build_teacher(config.backbone, teacher_weights)
    bottleneck = bottleneck_for(teacher)
    decoder = decoder_for(teacher, bottleneck.out_channels)
    return ReverseDistillation(config, teacher, bottleneck, decoder)
