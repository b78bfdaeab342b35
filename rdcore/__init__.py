"""rdcore: reverse-distillation anomaly detection (Deng & Li, CVPR 2022) in plain PyTorch."""

from rdcore.config import ModelConfig
from rdcore.errors import (
    ArtifactError,
    DatasetError,
    ImageReadError,
    RdcoreError,
    TeacherWeightsError,
)
from rdcore.model import AnomalyPrediction, FeaturePair, ReverseDistillation, reverse_distillation
from rdcore.preprocess import Preprocess

__version__ = "0.1.0"

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
