"""The device the worker would run on: a GPU that was asked for must be visible."""

from __future__ import annotations

import torch

from rdcore.device import resolve_device
from worker.doctor.report import Row, Status

CHECK = "device"
_GPU_FIX = (
    "run on a GPU node (an nvidia.com/gpu limit, the NVIDIA device plugin, a CUDA build of "
    "torch), or set RDQC_DEVICE=cpu"
)

_AUTO_FIX = (
    "on a GPU node, check the nvidia.com/gpu limit, the NVIDIA device plugin and that torch is a "
    "CUDA build; where the CPU is meant, set RDQC_DEVICE=cpu"
)


def device_row(device: str) -> Row:
    """``device`` is RDQC_DEVICE: auto, cpu, mps, cuda or cuda:N."""
    if device == "auto":
        chosen = resolve_device("auto")
        if chosen.type == "cuda":
            return Row(CHECK, Status.OK, f"auto: would use cuda:0 ({_gpu_name(0)})")
        return Row(
            CHECK,
            Status.WARN,
            f"auto: no GPU visible{_without_cuda()}, would run on the CPU",
            _AUTO_FIX,
        )
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index < visible:
            return Row(CHECK, Status.OK, f"{device}: {_gpu_name(index)}")
        return Row(
            CHECK,
            Status.FAIL,
            f"RDQC_DEVICE={device}, but {visible} GPUs are visible{_without_cuda()}",
            _GPU_FIX,
        )
    if device == "mps" and not torch.backends.mps.is_available():
        return Row(CHECK, Status.FAIL, "RDQC_DEVICE=mps, but MPS is not available", _GPU_FIX)
    return Row(CHECK, Status.OK, device)


def _gpu_name(index: int) -> str:
    return str(torch.cuda.get_device_name(index))


def _without_cuda() -> str:
    if torch.version.cuda is None:
        return f" (torch {torch.__version__} is built without CUDA)"
    return ""
