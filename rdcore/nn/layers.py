"""What the bottleneck and the decoder share with torchvision's ResNet: norm layers, weight init."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# Norm layers are injected as a constructor taking the channel count, as in torchvision's ResNet.
NormLayer = Callable[[int], nn.Module]


def init_resnet_weights(module: nn.Module) -> None:
    """He-normal convolutions and identity BatchNorm, as torchvision's ResNet and RD4AD do.

    Transposed convolutions keep PyTorch's default, as in the official decoder.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
