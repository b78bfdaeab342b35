"""The in-memory whole-loop harness shared by the pipeline tests: a tiny real model, memory
sinks, and a source that audits every commit against what is durable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rdcore import ModelConfig, Preprocess, ReverseDistillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from worker.frame_decoder import FrameDecoder
from worker.frames import SourceRecord, TopicPartition
from worker.modelstore.memory import MemoryModelStore
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline, PipelineConfig
from worker.pipeline.shadow import ShadowConfig
from worker.scoring import BatchScorer, HeatmapsFor
from worker.sinks.memory import MemoryDeadLetterSink, MemoryHeatmapSink, MemoryScoreSink
from worker.sources.memory import MemorySource

CONFIG = ModelConfig(backbone="resnet18", image_size=64)
FAST = PipelineConfig(
    max_batch_size=4,
    max_wait_s=0.01,
    max_queue=8,
    decode_threads=2,
    model_poll_s=0.05,
    shutdown_grace_s=10.0,
    sink_retry_s=0.02,
)


def noise_png(seed: int, size: tuple[int, int] = (64, 64)) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".png", image)[1].tobytes())


def loaded_model(
    module: ReverseDistillation, product_line: str, version: str, threshold: float
) -> LoadedModel:
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line=product_line,
        model_version=version,
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=CONFIG,
        calibration=calibrate([threshold - 0.01, threshold, threshold + 0.01], quantile=0.5),
        training={},
        metrics=None,
        weights_sha256="0" * 64,
    )
    return LoadedModel(module, manifest, Preprocess.from_config(CONFIG), Path("unused"))


def frame_id(record: SourceRecord) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


class AuditedSource(MemorySource):
    """Fails the run if a commit covers a record whose result or dead letter is not durable.

    Also counts the most records polled and not yet durable at once.
    """

    def __init__(self, durable: Callable[[], set[str]], partitions: int) -> None:
        super().__init__(partitions=partitions)
        self._durable = durable
        self._polled: set[str] = set()
        self.most_outstanding = 0

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        records = super().poll(timeout_s, max_records)
        self._polled |= {frame_id(r) for r in records}
        self.most_outstanding = max(self.most_outstanding, len(self._polled - self._durable()))
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        durable = self._durable()
        for tp, offset in offsets.items():
            missing = [o for o in range(offset) if f"{tp.topic}:{tp.partition}:{o}" not in durable]
            assert not missing, f"commit {tp}@{offset} passes unfinished offsets {missing}"
        super().commit(offsets)


@dataclass
class Harness:
    store: MemoryModelStore
    config: PipelineConfig = FAST
    partitions: int = 2
    heatmaps_for: HeatmapsFor = "flagged"
    scores: MemoryScoreSink = field(default_factory=MemoryScoreSink)
    heatmaps: MemoryHeatmapSink = field(default_factory=MemoryHeatmapSink)
    dead_letters: MemoryDeadLetterSink = field(default_factory=MemoryDeadLetterSink)
    health: Health = field(default_factory=Health)
    metrics: Metrics = field(default_factory=Metrics)
    scorer: BatchScorer | None = None  # None: on the CPU, with heatmaps as heatmaps_for says
    shadow: ShadowConfig | None = None  # None: no shadow testing
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.source = AuditedSource(self.durable, self.partitions)
        self.pipeline = Pipeline(
            source=self.source,
            dead_letters=self.dead_letters,
            scores=self.scores,
            heatmaps=self.heatmaps,
            models=self.store,
            decoder=FrameDecoder(1 << 20, 16, 4096),
            scorer=self.scorer or BatchScorer("cpu", heatmaps_for=self.heatmaps_for),
            config=self.config,
            worker_id="test-worker",
            metrics=self.metrics,
            health=self.health,
            shadow=self.shadow,
        )

    def durable(self) -> set[str]:
        return {r.meta.frame_id for r in self.scores.results} | {
            frame_id(r.record) for r in self.dead_letters.rejections
        }

    def add(self, partition: int, product_line: str | None, payload: bytes) -> SourceRecord:
        headers = [] if product_line is None else [("product_line", product_line.encode())]
        return self.source.append(partition, payload, headers, key=b"cam-1")

    def all_committed(self) -> bool:
        ends = self.source.end_offsets()
        return self.source.committed() == {tp: end for tp, end in ends.items() if end}

    @contextmanager
    def running(self, timeout_s: float = 20.0) -> Iterator[threading.Event]:
        """Run the pipeline on a thread; its errors (an audit failure) fail the test."""
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield stop
        finally:
            stop.set()
            thread.join(timeout_s)
        assert not thread.is_alive(), "the pipeline did not stop"
        self._raise_errors()

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            self._raise_errors()
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def _run(self, stop: threading.Event) -> None:
        try:
            self.pipeline.run(stop)
        except BaseException as exc:
            self.errors.append(exc)

    def _raise_errors(self) -> None:
        if self.errors:
            raise self.errors[0]


def scored_ids(harness: Harness) -> list[str]:
    return sorted(r.meta.frame_id for r in harness.scores.results)


def commits_per_partition(source: MemorySource) -> dict[TopicPartition, list[int]]:
    sequence: dict[TopicPartition, list[int]] = {}
    for commit in source.commits:
        for tp, offset in commit.items():
            sequence.setdefault(tp, []).append(offset)
    return sequence
