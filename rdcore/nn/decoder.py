"""The student decoder: a ResNet run backwards, restoring the teacher's three feature maps.

Blocks first, then the decoder, in the shape of torchvision's resnet.py. The first block of each
stage upsamples x2 with a 2x2 stride-2 transposed convolution, on its main path and its shortcut,
as in RD4AD's ``de_resnet``.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, conv1x1, conv3x3

from rdcore.nn.layers import NormLayer, init_resnet_weights
from rdcore.nn.teacher import Teacher


def deconv2x2(in_planes: int, out_planes: int, groups: int = 1) -> nn.ConvTranspose2d:
    """2x2 stride-2 transposed convolution: doubles height and width."""
    return nn.ConvTranspose2d(
        in_planes, out_planes, kernel_size=2, stride=2, groups=groups, bias=False
    )


class DecoderBasicBlock(nn.Module):
    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        upsample: nn.Module | None = None,
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if base_width != 64:
            raise ValueError(f"DecoderBasicBlock supports base_width=64 only, got {base_width}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = (
            deconv2x2(inplanes, planes) if upsample is not None else conv3x3(inplanes, planes)
        )
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


class DecoderBottleneck(nn.Module):
    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        upsample: nn.Module | None = None,
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0))
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = deconv2x2(width, width) if upsample is not None else conv3x3(width, width)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: Tensor = self.relu(out + identity)
        return result


DecoderBlock = type[DecoderBasicBlock] | type[DecoderBottleneck]


class StudentDecoder(nn.Module):
    """Three upsampling stages; returns features in the teacher's order (finest first)."""

    def __init__(
        self,
        block: DecoderBlock,
        in_channels: int,
        feature_channels: tuple[int, int, int],
        depths: tuple[int, int, int],
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if any(c % block.expansion for c in feature_channels):
            raise ValueError(
                f"feature channels {feature_channels} are not multiples of the block expansion "
                f"{block.expansion}"
            )
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self._base_width = base_width
        self.inplanes = in_channels
        c1, c2, c3 = feature_channels
        self.layer1 = self._make_layer(block, c3 // block.expansion, depths[0])
        self.layer2 = self._make_layer(block, c2 // block.expansion, depths[1])
        self.layer3 = self._make_layer(block, c1 // block.expansion, depths[2])
        init_resnet_weights(self)

    def _make_layer(self, block: DecoderBlock, planes: int, depth: int) -> nn.Sequential:
        out_channels = planes * block.expansion
        upsample = nn.Sequential(
            deconv2x2(self.inplanes, out_channels), self._norm_layer(out_channels)
        )
        layers: list[nn.Module] = [
            block(self.inplanes, planes, upsample, self._base_width, self._norm_layer)
        ]
        self.inplanes = out_channels
        layers += [
            block(self.inplanes, planes, None, self._base_width, self._norm_layer)
            for _ in range(1, depth)
        ]
        return nn.Sequential(*layers)

    def forward(self, embedding: Tensor) -> list[Tensor]:
        coarse = self.layer1(embedding)
        middle = self.layer2(coarse)
        fine = self.layer3(middle)
        return [fine, middle, coarse]


def decoder_for(teacher: Teacher, in_channels: int) -> StudentDecoder:
    """The decoder that mirrors ``teacher``: same block kind, depths and base width."""
    block: DecoderBlock = DecoderBottleneck if teacher.block is Bottleneck else DecoderBasicBlock
    return StudentDecoder(
        block, in_channels, teacher.feature_channels, teacher.depths, teacher.base_width
    )
