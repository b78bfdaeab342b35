"""One seed, one model: two builds after the same seed are identical, weights and outputs."""

from __future__ import annotations

import torch

from rdcore import ModelConfig, ReverseDistillation, reverse_distillation

CONFIG = ModelConfig(backbone="resnet18", image_size=64)


def _build(seed: int) -> ReverseDistillation:
    torch.manual_seed(seed)
    return reverse_distillation(CONFIG, "random").eval()


def test_same_seed_same_model_and_outputs() -> None:
    first, second = _build(0), _build(0)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))

    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for key, value in first_state.items():
        assert torch.equal(value, second_state[key]), key
    with torch.no_grad():
        a, b = first(images), second(images)
    assert torch.equal(a.score, b.score)
    assert torch.equal(a.anomaly_map, b.anomaly_map)


def test_another_seed_gives_another_model() -> None:
    first, other = _build(0), _build(1)

    key = "decoder.layer1.0.conv1.weight"
    assert not torch.equal(first.state_dict()[key], other.state_dict()[key])
