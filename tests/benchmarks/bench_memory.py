"""Peak memory of the pipeline under a burst of large frames, per in-flight budget.

A burst of 4K JPEG frames waits in an in-memory source; the pipeline (memory sinks, a random
resnet18 model) scores them all. Each budget runs in its own process, so its peak RSS
(``getrusage`` ru_maxrss) is its own; the source shares one payload between its records and
hands each poll a copy, so payload memory is the pipeline's, as with Kafka.

Run: .venv/bin/python tests/benchmarks/bench_memory.py [--frames 300] [--budgets-mb 256 100000]
Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from rdcore import ModelConfig, Preprocess, reverse_distillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from worker.frame_decoder import FrameDecoder
from worker.frames import SourceRecord
from worker.modelstore.memory import MemoryModelStore
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline, PipelineConfig
from worker.scoring import BatchScorer
from worker.sinks.memory import MemoryDeadLetterSink, MemoryHeatmapSink, MemoryScoreSink
from worker.sources.memory import MemorySource

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]  # the children import this checkout's worker
CONFIG = ModelConfig(backbone="resnet18", image_size=128)


class CopyingSource(MemorySource):
    """Every poll returns fresh copies of the payloads, as a Kafka consumer does."""

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        records = super().poll(timeout_s, max_records)
        return [replace(r, value=bytes(bytearray(r.value))) for r in records]


def frame_jpeg(width: int, height: int) -> bytes:
    """A camera-like frame: smooth shapes with some grain, so JPEG neither explodes nor vanishes.

    Built small and scaled up, so making it does not raise the peak RSS being measured.
    """
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    pixels = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    pixels += rng.integers(0, 8, pixels.shape, dtype=np.uint8)
    return bytes(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())


def model() -> LoadedModel:
    torch.manual_seed(0)
    module = reverse_distillation(CONFIG, "random").eval()
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line="line",
        model_version="v1",
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=CONFIG,
        calibration=calibrate([0.1, 0.2, 0.3], quantile=0.5),
        training={},
        metrics=None,
        weights_sha256="0" * 64,
    )
    return LoadedModel(module, manifest, Preprocess.from_config(CONFIG), Path("unused"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(frames: int, budget_mb: int, width: int, height: int) -> dict[str, float]:
    payload = frame_jpeg(width, height)
    source = CopyingSource(partitions=2)
    scores = MemoryScoreSink()
    metrics = Metrics()
    pipeline = Pipeline(
        source=source,
        dead_letters=MemoryDeadLetterSink(),
        scores=scores,
        heatmaps=MemoryHeatmapSink(),
        models=MemoryModelStore({"line": model()}),
        decoder=FrameDecoder(64 * MIB, 16, 8192),
        scorer=BatchScorer("cpu", heatmaps_for="none"),
        config=PipelineConfig(max_inflight_bytes=budget_mb * MIB),
        worker_id="bench",
        metrics=metrics,
        health=Health(),
    )
    before = peak_rss_mib()
    for index in range(frames):
        source.append(index % 2, payload, [("product_line", b"line")])
    stop = threading.Event()
    thread = threading.Thread(target=pipeline.run, args=(stop,))
    started = time.monotonic()
    thread.start()
    most_bytes = 0.0
    while len(scores.results) < frames:
        most_bytes = max(most_bytes, metrics.registry.get_sample_value("rdqc_in_flight_bytes") or 0)
        time.sleep(0.05)
    seconds = time.monotonic() - started
    stop.set()
    thread.join()
    return {
        "budget_mb": budget_mb,
        "payload_mib": len(payload) / MIB,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "most_in_flight_mib": most_bytes / MIB,
        "frames_per_s": frames / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--budgets-mb", type=int, nargs="+", default=[256, 100_000])
    parser.add_argument("--size", type=int, nargs=2, default=[3840, 2160], metavar=("W", "H"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run: one budget
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.one is not None:
        print(json.dumps(run_one(args.frames, args.one, *args.size)))
        return
    print(f"{args.frames} frames {args.size[0]}x{args.size[1]} JPEG, resnet18 at 128 px, CPU")
    print(
        "| budget MiB | peak RSS MiB | RSS before | most in flight MiB | frames/s | payload MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for budget in args.budgets_mb:
        child = [sys.executable, __file__, "--one", str(budget), "--frames", str(args.frames)]
        child += ["--size", *map(str, args.size)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        output = subprocess.run(child, check=True, capture_output=True, text=True, env=env).stdout
        result = json.loads(output.splitlines()[-1])  # after the pipeline's log lines
        print(
            f"| {budget} | {result['peak_rss_mib']:.0f} | {result['rss_before_mib']:.0f} | "
            f"{result['most_in_flight_mib']:.0f} | {result['frames_per_s']:.1f} | "
            f"{result['payload_mib']:.2f} |"
        )


if __name__ == "__main__":
    main()
