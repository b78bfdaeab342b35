"""Where a model runs and in which precision: one choice for training, evaluation and serving."""

from __future__ import annotations

from typing import Literal

import torch

# "auto" is training's --amp: the half precision the GPU does best.
Precision = Literal["fp32", "bf16", "fp16", "auto"]
_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is passed to torch as is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The dtype to autocast to on ``device``, or None to run in fp32.

    Only CUDA autocasts: on CPU, autocast is slower than fp32 for these convolutions. "auto" is
    bf16 where the GPU supports it (no loss scaling needed), else fp16.
    """
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _HALF[precision]
