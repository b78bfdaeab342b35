"""Fixtures: one tiny random model per module, its median score, and artifacts of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pipeline_harness import CONFIG, noise_png

from rdcore import Preprocess, ReverseDistillation, reverse_distillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.calibration import calibrate
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


@pytest.fixture(scope="module")
def p1_artifacts(
    tmp_path_factory: pytest.TempPathFactory, module: ReverseDistillation
) -> dict[str, Path]:
    """Calibrated artifacts of product line p1: v1, v2 (with evaluation metrics), v3, and
    "v1-other", another artifact (another calibration) that also calls itself v1."""
    root = tmp_path_factory.mktemp("p1-artifacts")
    for name, version, scores, metrics in [
        ("v1", "v1", [0.1, 0.2, 0.3], None),
        ("v2", "v2", [0.2, 0.3, 0.4], {"image_auroc": 0.97, "test_good": 20.0}),
        ("v3", "v3", [0.1, 0.2, 0.3], None),
        ("v1-other", "v1", [0.4, 0.5, 0.6], None),
    ]:
        save_artifact(
            module,
            root / name,
            product_line="p1",
            model_version=version,
            calibration=calibrate(scores),
            training={"epochs_completed": 1},
            metrics=metrics,
        )
    return {name: root / name for name in ("v1", "v2", "v3", "v1-other")}
