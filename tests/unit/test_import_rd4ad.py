"""An official RD4AD checkpoint imports into an artifact that scores exactly like the original."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from rdcore import ArtifactError, ModelConfig, ReverseDistillation, reverse_distillation
from rdcore.artifacts.artifact import load_artifact
from rdcore.artifacts.import_rd4ad import import_rd4ad

CONFIG = ModelConfig(backbone="resnet18", image_size=64)
# Ours -> official, written out here independently of the importer's table.
OFFICIAL_NAMES = {
    "fuse_low.0.": "conv1.",
    "fuse_low.1.": "bn1.",
    "fuse_low.3.": "conv2.",
    "fuse_low.4.": "bn2.",
    "fuse_mid.0.": "conv3.",
    "fuse_mid.1.": "bn3.",
    "embed.": "bn_layer.",
}


def _official_bn_state(model: ReverseDistillation) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for key, value in model.bottleneck.state_dict().items():
        ours = next(p for p in OFFICIAL_NAMES if key.startswith(p))
        state[OFFICIAL_NAMES[ours] + key[len(ours) :]] = value.clone()
    # BN_layer's conv4/bn4 exist in the official module (1x1, 1024 -> 512 for BasicBlock) but
    # are never used by its forward.
    state["conv4.weight"] = torch.randn(512, 1024, 1, 1)
    state["bn4.weight"] = torch.ones(512)
    state["bn4.bias"] = torch.zeros(512)
    state["bn4.running_mean"] = torch.zeros(512)
    state["bn4.running_var"] = torch.ones(512)
    state["bn4.num_batches_tracked"] = torch.tensor(0)
    return state


@pytest.fixture(scope="module")
def original() -> ReverseDistillation:
    torch.manual_seed(0)
    model = reverse_distillation(CONFIG, "random")
    model.train()
    with torch.no_grad():
        model.features(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def teacher_file(original: ReverseDistillation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in original.teacher.state_dict().items()}, str(path))
    return path


def _write_checkpoint(path: Path, bn: dict[str, Tensor], decoder: dict[str, Tensor]) -> Path:
    torch.save({"bn": bn, "decoder": decoder}, path)
    return path


def _import(checkpoint: Path, output: Path, teacher_file: Path) -> None:
    import_rd4ad(
        checkpoint,
        output,
        config=CONFIG,
        teacher_weights=teacher_file,
        product_line="bottles",
        model_version="rd4ad-1",
    )


def test_imported_model_scores_exactly_like_the_original(
    original: ReverseDistillation, teacher_file: Path, tmp_path: Path
) -> None:
    checkpoint = _write_checkpoint(
        tmp_path / "wres50_bottle.pth",
        _official_bn_state(original),
        {k: v.clone() for k, v in original.decoder.state_dict().items()},
    )

    _import(checkpoint, tmp_path / "artifact", teacher_file)
    loaded = load_artifact(tmp_path / "artifact")

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, actual = original(images), loaded.model(images)
    assert actual.anomaly_map.dtype == torch.float32
    assert torch.equal(actual.anomaly_map, expected.anomaly_map)
    assert torch.equal(actual.score, expected.score)
    assert loaded.manifest.training["source"] == "rd4ad"
    assert loaded.manifest.training["checkpoint"] == "wres50_bottle.pth"


def test_memory_buffers_in_bn_are_dropped_like_the_official_test_script(
    original: ReverseDistillation, teacher_file: Path, tmp_path: Path
) -> None:
    bn = _official_bn_state(original)
    bn["memory.bank"] = torch.zeros(4)
    decoder = {k: v.clone() for k, v in original.decoder.state_dict().items()}
    checkpoint = _write_checkpoint(tmp_path / "with_memory.pth", bn, decoder)

    _import(checkpoint, tmp_path / "artifact", teacher_file)

    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = original(images)
        actual = load_artifact(tmp_path / "artifact").model(images)
    assert torch.equal(actual.score, expected.score)


@pytest.mark.parametrize("part", ["bn", "decoder"])
def test_unknown_key_is_refused_naming_it(
    original: ReverseDistillation, teacher_file: Path, tmp_path: Path, part: str
) -> None:
    bn = _official_bn_state(original)
    decoder = dict(original.decoder.state_dict())
    (bn if part == "bn" else decoder)["attention.weight"] = torch.zeros(3)
    checkpoint = _write_checkpoint(tmp_path / "extra.pth", bn, decoder)

    with pytest.raises(ArtifactError, match=r"attention\.weight") as error:
        _import(checkpoint, tmp_path / "artifact", teacher_file)
    assert "extra.pth" in str(error.value)
    assert not (tmp_path / "artifact").exists()


def test_missing_key_is_refused_naming_it(
    original: ReverseDistillation, teacher_file: Path, tmp_path: Path
) -> None:
    bn = _official_bn_state(original)
    del bn["bn3.running_var"]
    checkpoint = _write_checkpoint(tmp_path / "short.pth", bn, dict(original.decoder.state_dict()))

    with pytest.raises(ArtifactError, match=r"bottleneck\.fuse_mid\.1\.running_var"):
        _import(checkpoint, tmp_path / "artifact", teacher_file)


def test_a_plain_state_dict_is_not_a_checkpoint(
    original: ReverseDistillation, teacher_file: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "plain.pth"
    torch.save(dict(original.decoder.state_dict()), checkpoint)

    with pytest.raises(ArtifactError, match="not an RD4AD checkpoint"):
        _import(checkpoint, tmp_path / "artifact", teacher_file)
