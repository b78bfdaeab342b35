"""Device and precision choice: autocast only on CUDA, fp32 everywhere else."""

from __future__ import annotations

import pytest
import torch

from rdcore.device import Precision, autocast_dtype


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "auto"])
def test_cpu_never_autocasts(precision: Precision) -> None:
    assert autocast_dtype(torch.device("cpu"), precision) is None


@pytest.mark.parametrize("bf16_supported", [True, False])
def test_cuda_autocasts_to_the_precision_asked_for(
    bf16_supported: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the device type and the GPU's bf16 support are consulted, so no GPU is needed.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    cuda = torch.device("cuda")

    assert autocast_dtype(cuda, "fp32") is None
    assert autocast_dtype(cuda, "bf16") == torch.bfloat16
    assert autocast_dtype(cuda, "fp16") == torch.float16
    assert autocast_dtype(cuda, "auto") == (torch.bfloat16 if bf16_supported else torch.float16)
