"""The GPU memory gauges: set after each batch from the inference device's allocator, on CUDA
only, so a CPU worker neither pays for them nor exports a misleading zero."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pipeline_harness import Harness, loaded_model, noise_png

from rdcore import ReverseDistillation
from worker.modelstore.memory import MemoryModelStore
from worker.observability.prometheus import GpuMemory, GpuMemoryProbe, Metrics
from worker.pipeline import inference

pytestmark = pytest.mark.unit

GAUGES = ("rdqc_gpu_memory_allocated_bytes", "rdqc_gpu_memory_reserved_bytes")


def gpu_samples(metrics: Metrics) -> list[Any]:
    return [
        sample
        for family in metrics.registry.collect()
        if family.name in GAUGES
        for sample in family.samples
    ]


def batches_scored(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("rdqc_batch_size_count") or 0.0


def score_frames(harness: Harness, count: int) -> None:
    for i in range(count):
        harness.add(i % 2, "caps", noise_png(i))
    with harness.running():
        harness.wait_for(harness.all_committed)


def test_a_cpu_worker_exports_no_gpu_memory(module: ReverseDistillation, threshold: float) -> None:
    assert inference.cuda_memory_probe(torch.device("cpu")) is None
    harness = Harness(MemoryModelStore({"caps": loaded_model(module, "caps", "c1", threshold)}))

    score_frames(harness, 6)

    assert batches_scored(harness.metrics) >= 1
    assert gpu_samples(harness.metrics) == []


def test_the_stage_records_the_probe_after_every_batch(
    module: ReverseDistillation, threshold: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[GpuMemory] = []

    def probe() -> GpuMemory:
        reads.append(GpuMemory("cuda:0", 1000 * (len(reads) + 1), 4096 * (len(reads) + 1)))
        return reads[-1]

    def probe_for_any_device(device: torch.device) -> GpuMemoryProbe:
        return probe

    monkeypatch.setattr(inference, "cuda_memory_probe", probe_for_any_device)
    harness = Harness(MemoryModelStore({"caps": loaded_model(module, "caps", "c1", threshold)}))

    score_frames(harness, 6)

    assert len(reads) == batches_scored(harness.metrics) >= 1
    labels = {"device": "cuda:0"}
    registry = harness.metrics.registry
    assert registry.get_sample_value(GAUGES[0], labels) == reads[-1].allocated_bytes
    assert registry.get_sample_value(GAUGES[1], labels) == reads[-1].reserved_bytes


def test_update_keeps_the_latest_reading_per_device() -> None:
    metrics = Metrics()
    for allocated, reserved in [(10, 20), (30, 64)]:
        metrics.update_gpu_memory(lambda a=allocated, r=reserved: GpuMemory("cuda:1", a, r))

    assert metrics.registry.get_sample_value(GAUGES[0], {"device": "cuda:1"}) == 30
    assert metrics.registry.get_sample_value(GAUGES[1], {"device": "cuda:1"}) == 64
    assert len(gpu_samples(metrics)) == 2


def test_the_cuda_probe_reads_its_own_devices_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[torch.device] = []

    def memory_stats(device: torch.device) -> dict[str, int]:
        asked.append(device)
        return {"allocated_bytes.all.current": 123, "reserved_bytes.all.current": 456}

    monkeypatch.setattr(torch.cuda, "memory_stats", memory_stats)
    device = torch.device("cuda", 1)
    probe = inference.cuda_memory_probe(device)

    assert probe is not None
    assert probe() == GpuMemory("cuda:1", 123, 456)
    assert asked == [device]
