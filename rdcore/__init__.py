"""rdcore: reverse-distillation anomaly detection (Deng & Li, CVPR 2022) in plain PyTorch.

Public names are resolved on first use (PEP 562), so ``import rdcore.errors`` or
``import rdcore.config`` loads neither torch nor OpenCV: the command line's help stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rdcore.config import ModelConfig
    from rdcore.data.preprocess import Preprocess
    from rdcore.errors import (
        ArtifactError,
        DatasetError,
        ImageReadError,
        RdcoreError,
        TeacherWeightsError,
    )
    from rdcore.nn.model import (
        AnomalyPrediction,
        FeaturePair,
        ReverseDistillation,
        reverse_distillation,
    )

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "AnomalyPrediction": "rdcore.nn.model",
    "ArtifactError": "rdcore.errors",
    "DatasetError": "rdcore.errors",
    "FeaturePair": "rdcore.nn.model",
    "ImageReadError": "rdcore.errors",
    "ModelConfig": "rdcore.config",
    "Preprocess": "rdcore.data.preprocess",
    "RdcoreError": "rdcore.errors",
    "ReverseDistillation": "rdcore.nn.model",
    "TeacherWeightsError": "rdcore.errors",
    "reverse_distillation": "rdcore.nn.model",
}

__all__ = [
    "AnomalyPrediction",
    "ArtifactError",
    "DatasetError",
    "FeaturePair",
    "ImageReadError",
    "ModelConfig",
    "Preprocess",
    "RdcoreError",
    "ReverseDistillation",
    "TeacherWeightsError",
    "__version__",
    "reverse_distillation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rdcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
