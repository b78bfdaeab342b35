"""The settings that define a model: recorded in every artifact so serving rebuilds it exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The torchvision ResNets a teacher can be built from (rdcore.nn.teacher builds each one). Kept
# here as plain names so the command line can list them without importing torch.
BACKBONES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "wide_resnet50_2",
    "wide_resnet101_2",
)

MapMode = Literal["sum", "mul"]
MAP_MODES: tuple[MapMode, ...] = ("sum", "mul")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, preprocessing and anomaly-map settings of one reverse-distillation model.

    The defaults are those of the official RD4AD code: wide_resnet50_2, 256x256 inputs, ImageNet
    normalization, scale maps summed, then a sigma-4 Gaussian blur.
    """

    backbone: str = "wide_resnet50_2"
    image_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    map_mode: MapMode = "sum"
    blur_sigma: float = 4.0
    layers: tuple[str, ...] = field(default=("layer1", "layer2", "layer3"))

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(
                f"image_size must be a multiple of 32 and >= 32, got {self.image_size}"
            )
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {MAP_MODES}, got {self.map_mode!r}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        if self.layers != ("layer1", "layer2", "layer3"):
            raise ValueError(
                f"only layers ('layer1', 'layer2', 'layer3') are supported, got {self.layers}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        for key in ("mean", "std", "layers"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
