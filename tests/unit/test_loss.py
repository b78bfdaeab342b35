"""The training loss equals the official formula: per scale, global cosine distance per image."""

from __future__ import annotations

import torch

from rdcore.nn.loss import reverse_distillation_loss


def _direct_loss(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for t, s in zip(teacher, student, strict=True):
        a, b = t.reshape(t.shape[0], -1), s.reshape(s.shape[0], -1)
        cosine = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
        total = total + (1.0 - cosine).mean()
    return total


def test_loss_matches_direct_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]
    teacher = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    student = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]

    loss = reverse_distillation_loss(teacher, student)

    torch.testing.assert_close(loss, _direct_loss(teacher, student), rtol=0, atol=1e-12)


def test_loss_is_zero_for_a_perfect_student_up_to_scale() -> None:
    teacher = [torch.rand(2, 4, 8, 8, dtype=torch.float64) + 0.1 for _ in range(3)]
    student = [3.0 * t for t in teacher]

    assert reverse_distillation_loss(teacher, student).item() < 1e-12
