"""Every supported backbone builds a model whose outputs have the documented shapes."""

from __future__ import annotations

import pytest
import torch

from rdcore import ModelConfig, reverse_distillation
from rdcore.config import BACKBONES
from rdcore.nn.loss import reverse_distillation_loss


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_frozen_teacher(backbone: str) -> None:
    torch.manual_seed(0)
    model = reverse_distillation(ModelConfig(backbone=backbone, image_size=64), "random")
    images = torch.randn(2, 3, 64, 64)
    teacher_state = {k: v.clone() for k, v in model.teacher.state_dict().items()}

    model.train()
    teacher, student = model.features(images)
    torch.autograd.backward(reverse_distillation_loss(teacher, student))

    assert not any(m.training for m in model.teacher.modules())
    assert all(m.training for m in model.decoder.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.trainable_parameters())
    assert [f.shape for f in student] == [f.shape for f in teacher]
    assert [f.shape[-1] for f in teacher] == [16, 8, 4]
    # A training step must not move the teacher's BatchNorm statistics.
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key

    trainable = {id(p) for p in model.trainable_parameters()}
    expected = {id(p) for p in [*model.bottleneck.parameters(), *model.decoder.parameters()]}
    assert trainable == expected
    assert len(model.trainable_parameters()) == len(expected)

    model.eval()
    with torch.no_grad():
        prediction = model(images)
    assert prediction.score.shape == (2,)
    assert prediction.anomaly_map.shape == (2, 64, 64)
