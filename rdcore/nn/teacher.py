"""The frozen teacher: an ImageNet ResNet truncated after layer3, returning three feature maps."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from rdcore.config import BACKBONES
from rdcore.errors import TeacherWeightsError
from rdcore.nn.weights import load_exactly

_BUILDERS: dict[str, Callable[..., ResNet]] = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
    "wide_resnet50_2": models.wide_resnet50_2,
    "wide_resnet101_2": models.wide_resnet101_2,
}
# The weights of the official RD4AD results (wide_resnet50_2: the 95faca4d file).
_IMAGENET_WEIGHTS: dict[str, models.WeightsEnum] = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "wide_resnet50_2": models.Wide_ResNet50_2_Weights.IMAGENET1K_V1,
    "wide_resnet101_2": models.Wide_ResNet101_2_Weights.IMAGENET1K_V1,
}
# ResNet parts the Teacher drops: their weights are neither required nor checked.
_UNUSED_PREFIXES = ("layer4.", "fc.")


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    norm = last.bn3 if isinstance(last, Bottleneck) else last.bn2
    if not isinstance(norm, nn.BatchNorm2d):
        raise TypeError(f"expected a BatchNorm2d closing {type(last).__name__}, got {type(norm)}")
    return norm.num_features


class Teacher(nn.Module):
    """ResNet stem and layer1..layer3; layer4 and the classifier are never built.

    It reports what downstream modules need to mirror it (``feature_channels``, ``block``,
    ``depths``, ``base_width``, ``embedding_depth``), so the bottleneck and decoder are sized from
    the backbone itself rather than from a table keyed by its name. The teacher stays in eval mode
    whatever mode its parent is put in, so its BatchNorm statistics never drift.
    """

    def __init__(self, resnet: ResNet) -> None:
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        first = resnet.layer1[0]
        self.block: type[BasicBlock | Bottleneck] = type(first)
        self.base_width: int = resnet.base_width
        self.depths: tuple[int, int, int] = (
            len(resnet.layer1),
            len(resnet.layer2),
            len(resnet.layer3),
        )
        # The one-class embedding takes layer4's place, with layer4's depth (RD4AD's BN_layer).
        self.embedding_depth: int = len(resnet.layer4)
        self.feature_channels: tuple[int, int, int] = (
            _out_channels(resnet.layer1),
            _out_channels(resnet.layer2),
            _out_channels(resnet.layer3),
        )
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def load_teacher_state(path: Path) -> dict[str, Tensor]:
    """Read teacher weights from a safetensors or torch file, never unpickling arbitrary objects."""
    if not path.is_file():
        raise TeacherWeightsError(f"teacher weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TeacherWeightsError(f"cannot read teacher weights from {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise TeacherWeightsError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _imagenet_state(backbone: str) -> dict[str, Any]:
    weights = _IMAGENET_WEIGHTS[backbone]
    try:
        state: dict[str, Any] = weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise TeacherWeightsError(
            f"ImageNet weights for {backbone} ({weights.url}) are not in the torch cache and could "
            f"not be downloaded ({exc}). Pass a local file with --teacher-weights PATH, or choose "
            "--teacher-weights random for a randomly initialized teacher."
        ) from exc
    return state


def build_teacher(backbone: str, weights: str | Path = "imagenet") -> Teacher:
    """Build a frozen teacher. ``weights`` is 'imagenet', 'random', or a path to a weights file."""
    if backbone not in _BUILDERS:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    resnet = _BUILDERS[backbone](weights=None)
    if weights != "random":
        if weights == "imagenet":
            state, source = _imagenet_state(backbone), f"torchvision {backbone} ImageNet weights"
        else:
            path = Path(weights)
            state, source = load_teacher_state(path), str(path)
        load_exactly(
            resnet,
            state,
            source=source,
            target=f"the {backbone} backbone",
            error=TeacherWeightsError,
            ignore=_UNUSED_PREFIXES,
        )
    return Teacher(resnet)
