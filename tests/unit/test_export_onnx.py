"""The exported ONNX graph reproduces the PyTorch scoring path, for any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import load_artifact, save_artifact
from rdcore.artifacts.onnx_export import export_onnx
from rdcore.errors import ExportError

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    directory = tmp_path_factory.mktemp("artifact")
    save_artifact(
        model.eval(),
        directory,
        product_line="bottles",
        model_version="v1",
        calibration=None,
        training={},
    )
    return directory


def test_onnx_matches_pytorch_with_a_dynamic_batch(artifact: Path, tmp_path: Path) -> None:
    report = export_onnx(artifact, tmp_path / "model.onnx")

    assert report.output == tmp_path / "model.onnx"
    assert report.max_abs_diff_score <= 1e-4
    assert report.max_abs_diff_map <= 1e-4
    session = onnxruntime.InferenceSession(str(report.output), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["score", "anomaly_map"]
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    score, anomaly_map = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = load_artifact(artifact).model(images)
    np.testing.assert_allclose(score, expected.score.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(anomaly_map, expected.anomaly_map.numpy(), rtol=0, atol=1e-4)


def test_failed_parity_check_leaves_the_target_untouched(artifact: Path, tmp_path: Path) -> None:
    earlier = tmp_path / "model.onnx"
    earlier.write_bytes(b"earlier export")

    with pytest.raises(ExportError, match="does not reproduce"):
        export_onnx(artifact, earlier, atol=-1.0)

    assert earlier.read_bytes() == b"earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
