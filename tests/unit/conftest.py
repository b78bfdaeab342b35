"""Fixtures of the pipeline tests: one tiny random model per module, and its median score."""

from __future__ import annotations

import pytest
import torch
from pipeline_harness import CONFIG, noise_png

from rdcore import Preprocess, ReverseDistillation, reverse_distillation
from rdcore.data.images import decode_image


@pytest.fixture(scope="module")
def module() -> ReverseDistillation:
    torch.manual_seed(0)
    return reverse_distillation(CONFIG, "random").eval()


@pytest.fixture(scope="module")
def threshold(module: ReverseDistillation) -> float:
    """The median raw score of the test images, so about half of them are flagged."""
    images = [decode_image(noise_png(seed), "test") for seed in range(8)]
    with torch.inference_mode():
        scores = module(Preprocess.from_config(CONFIG).batch(images)).score
    return float(scores.median())
