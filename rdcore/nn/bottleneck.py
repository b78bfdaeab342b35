"""The one-class bottleneck embedding (OCBE): multi-scale feature fusion, then one-class embedding.

Matches RD4AD's ``BN_layer``: the first two teacher features are brought down to the third's
resolution by stride-2 3x3 convolutions, the three are concatenated, and residual blocks of the
teacher's kind (layer4's depth, first block stride 2 with a 1x1 projection) compress them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1, conv3x3

from rdcore.nn.layers import NormLayer, init_resnet_weights
from rdcore.nn.teacher import Teacher

EMBEDDING_PLANES = 512


def _fuse(in_channels: int, out_channels: int, norm_layer: NormLayer) -> list[nn.Module]:
    return [conv3x3(in_channels, out_channels, 2), norm_layer(out_channels), nn.ReLU(inplace=True)]


class OneClassBottleneck(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        feature_channels: tuple[int, int, int],
        depth: int,
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        norm_layer = norm_layer or nn.BatchNorm2d
        c1, c2, c3 = feature_channels
        self.fuse_low = nn.Sequential(*_fuse(c1, c2, norm_layer), *_fuse(c2, c3, norm_layer))
        self.fuse_mid = nn.Sequential(*_fuse(c2, c3, norm_layer))
        self.out_channels = EMBEDDING_PLANES * block.expansion
        self.embed = self._make_embedding(block, 3 * c3, depth, base_width, norm_layer)
        init_resnet_weights(self)

    def _make_embedding(
        self,
        block: type[BasicBlock | Bottleneck],
        in_channels: int,
        depth: int,
        base_width: int,
        norm_layer: NormLayer,
    ) -> nn.Sequential:
        width = {"base_width": base_width} if block is Bottleneck else {}
        projection = nn.Sequential(
            conv1x1(in_channels, self.out_channels, 2), norm_layer(self.out_channels)
        )
        layers: list[nn.Module] = [
            block(in_channels, EMBEDDING_PLANES, 2, projection, norm_layer=norm_layer, **width)
        ]
        layers += [
            block(self.out_channels, EMBEDDING_PLANES, norm_layer=norm_layer, **width)
            for _ in range(1, depth)
        ]
        return nn.Sequential(*layers)

    def forward(self, features: list[Tensor]) -> Tensor:
        f1, f2, f3 = features
        fused = torch.cat([self.fuse_low(f1), self.fuse_mid(f2), f3], dim=1)
        embedding: Tensor = self.embed(fused)
        return embedding.contiguous()


def bottleneck_for(teacher: Teacher) -> OneClassBottleneck:
    """The OCBE that matches ``teacher``: same block kind, layer4's depth, same base width."""
    return OneClassBottleneck(
        teacher.block, teacher.feature_channels, teacher.embedding_depth, teacher.base_width
    )
