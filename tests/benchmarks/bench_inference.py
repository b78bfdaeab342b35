"""Inference benchmarks: ratios measured side by side in one run, written as a markdown table.

Run: .venv/bin/python tests/benchmarks/bench_inference.py [--device cuda] [--output FILE]
Not a test: pytest does not collect it, and no test depends on timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rdcore import ModelConfig, Preprocess, reverse_distillation
from rdcore.data.images import decode_image
from rdcore.nn.anomaly_map import GaussianBlur, gaussian_kernel1d, symmetric_index


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def dense_blur(maps: torch.Tensor, kernel2d: torch.Tensor, radius: int) -> torch.Tensor:
    height, width = maps.shape[-2:]
    rows = symmetric_index(height, radius).to(maps.device)
    cols = symmetric_index(width, radius).to(maps.device)
    padded = maps.unsqueeze(1).index_select(2, rows).index_select(3, cols)
    return F.conv2d(padded, kernel2d).squeeze(1)


def bench_blur(device: torch.device, repeats: int) -> list[str]:
    maps = torch.rand(32, 256, 256, device=device)
    blur = GaussianBlur(4.0).to(device)
    k = gaussian_kernel1d(4.0).to(device)
    kernel2d = torch.outer(k, k).view(1, 1, 33, 33)
    separable = timed(lambda: blur(maps), device, repeats)
    dense = timed(lambda: dense_blur(maps, kernel2d, 16), device, repeats)
    return [
        "| blur of 32 maps 256x256, sigma 4 | seconds | ratio |",
        "| --- | --- | --- |",
        f"| dense 33x33 conv | {dense:.4f} | 1.00 |",
        f"| separable 33 + 33 (rdcore) | {separable:.4f} | {dense / separable:.1f}x faster |",
    ]


def bench_model(backbone: str, device: torch.device, batches: list[int], repeats: int) -> list[str]:
    config = ModelConfig(backbone=backbone)
    model = reverse_distillation(config, "random").to(device).eval()
    lines = [
        f"| {backbone}, 256x256, {device.type} | images/s | vs batch {batches[0]} |",
        "| --- | --- | --- |",
    ]
    base = 0.0
    for size in batches:
        x = torch.randn(size, 3, 256, 256, device=device)

        def run(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        rate = size / timed(run, device, repeats)
        base = base or rate
        lines.append(f"| batch {size} | {rate:.1f} | {rate / base:.2f}x |")
    return lines


def bench_decode(repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    frame = (rng.random((960, 1280, 3)) * 255).astype(np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 3)
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    preprocess = Preprocess.from_config(ModelConfig())
    cpu = torch.device("cpu")
    decode = timed(lambda: decode_image(jpeg, "bench"), cpu, repeats)
    image = decode_image(jpeg, "bench")
    prep = timed(lambda: preprocess(image), cpu, repeats)
    return [
        "| one 1280x960 JPEG frame, CPU | ms |",
        "| --- | --- |",
        f"| decode | {decode * 1000:.2f} |",
        f"| resize to 256 + normalize | {prep * 1000:.2f} |",
    ]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    accel = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return (
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, accelerator: {accel}\n"
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"OpenCV {cv2.__version__}, NumPy {np.__version__}\n"
        f"- date: {time.strftime('%Y-%m-%d', time.gmtime())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backbones", default="resnet18,wide_resnet50_2")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    sections = [f"## Inference on {device.type}", machine(device), ""]
    sections += [*bench_blur(device, args.repeats), ""]
    for backbone in args.backbones.split(","):
        sections += [*bench_model(backbone, device, batches, args.repeats), ""]
    sections += bench_decode(args.repeats)
    text = "\n".join(sections) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
