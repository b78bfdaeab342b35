"""Prometheus metrics of one worker, on a private registry so tests can create many.

All names start with ``rdqc_``; the dead-letter counter is part of the contract
(docs/contracts.md §1). prometheus-client metrics are thread-safe, so the loop and the
inference thread both update them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_FAST_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LATENCY_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class GpuMemory:
    """What PyTorch's allocator holds on one device: tensors, and tensors plus its cache."""

    device: str
    allocated_bytes: int
    reserved_bytes: int


GpuMemoryProbe = Callable[[], GpuMemory]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_received = Counter("rdqc_frames_received", "Records polled", registry=r)
        self.frames_scored = Counter(
            "rdqc_frames_scored", "Frames scored and written", ["product_line"], registry=r
        )
        self.frames_flagged = Counter(
            "rdqc_frames_flagged", "Frames scored as anomalous", ["product_line"], registry=r
        )
        self.frames_dead_lettered = Counter(
            "rdqc_frames_dead_lettered",
            "Records sent to the dead-letter sink",
            ["reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "rdqc_batch_size", "Frames per inference batch", buckets=_BATCH_SIZES, registry=r
        )
        self.queue_wait = Histogram(
            "rdqc_queue_wait_seconds",
            "From poll to the start of the frame's inference batch",
            buckets=_FAST_SECONDS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "rdqc_inference_seconds",
            "Preprocess, forward pass and copy back of one batch",
            ["product_line"],
            buckets=_FAST_SECONDS,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "rdqc_end_to_end_latency_seconds",
            "From the frame's captured_at to its score (includes camera clock skew)",
            buckets=_LATENCY_SECONDS,
            registry=r,
        )
        # Counted by the model store's load hook (outcome ok|failed), where loads happen.
        self.model_loads = Counter(
            "rdqc_model_loads",
            "Attempts to load a model version",
            ["product_line", "outcome"],
            registry=r,
        )
        self.model_version_info = Gauge(
            "rdqc_model_version_info",
            "1 for the live model version of each product line",
            ["product_line", "version"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "rdqc_consumer_lag",
            "Records behind the partition end",
            ["topic", "partition"],
            registry=r,
        )
        self.frames_in_flight = Gauge(
            "rdqc_frames_in_flight", "Frames polled and not yet committable", registry=r
        )
        self.commits = Counter("rdqc_commits", "Offset commits", registry=r)
        # Faults that are waited out or survived, not dead-lettered (lifecycle, inference).
        self.model_unavailable = Gauge(
            "rdqc_model_unavailable",
            "1 while frames of a product line wait for a model that failed to load",
            ["product_line"],
            registry=r,
        )
        self.heatmap_failures = Counter(
            "rdqc_heatmap_failures",
            "Heatmaps that could not be rendered; their scores were written without one",
            ["product_line"],
            registry=r,
        )
        # Sinks and commits that fail: retried with backoff, nothing committed meanwhile.
        self.sink_flush_failures = Counter(
            "rdqc_sink_flush_failures",
            "Flushes or writes a sink failed after its own retries",
            ["sink"],
            registry=r,
        )
        self.sink_flush_retries = Counter(
            "rdqc_sink_flush_retries",
            "Flushes scheduled again after the sink failed or pushed back",
            ["sink"],
            registry=r,
        )
        self.sink_failing = Gauge(
            "rdqc_sink_failing",
            "1 while this sink's failure holds up the checkpoint (nothing is committed)",
            ["sink"],
            registry=r,
        )
        self.commit_failures = Counter(
            "rdqc_commit_failures",
            "Offset commits the source refused; the next commit retries them",
            registry=r,
        )
        # Delivery and memory (worker/pipeline/offsets.py, pausing.py).
        self.in_flight_bytes = Gauge(
            "rdqc_in_flight_bytes",
            "Bytes held by frames polled and not yet done: payloads, decoded images, model inputs",
            registry=r,
        )
        self.offset_gaps = Counter(
            "rdqc_offset_gaps",
            "A partition resumed past its first unfinished offset (records skipped); its "
            "commits stop at the gap",
            ["topic", "partition"],
            registry=r,
        )
        # The heartbeat thread (worker/heartbeat/writer.py): best effort, never stops the worker.
        self.heartbeat_failures = Counter(
            "rdqc_heartbeat_failures",
            "Heartbeat writes, or its removal at exit, that failed; the next interval tries again",
            registry=r,
        )
        # Shadow testing (worker/pipeline/shadow.py): best effort, never on the commit path.
        self.shadow_scored = Counter(
            "rdqc_shadow_scored",
            "Frames the shadow candidate scored, handed to the shadow sink",
            ["product_line"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "rdqc_shadow_dropped",
            "Frames not shadow-scored: the shadow budget was full or current work was waiting",
            ["product_line"],
            registry=r,
        )
        self.shadow_errors = Counter(
            "rdqc_shadow_errors",
            "Frames the shadow candidate failed to score (raised, or scored NaN or infinite)",
            ["product_line"],
            registry=r,
        )
        self.shadow_write_failures = Counter(
            "rdqc_shadow_write_failures",
            "Shadow entries lost: the shadow sink failed, or was still busy with earlier ones",
            ["product_line"],
            registry=r,
        )
        self.shadow_load_failures = Counter(
            "rdqc_shadow_load_failures",
            "Failed loads of a shadow candidate; retried with backoff, the live model unaffected",
            ["product_line"],
            registry=r,
        )
        self.shadow_version_info = Gauge(
            "rdqc_shadow_version_info",
            "1 for the shadow candidate version each product line is scored with besides",
            ["product_line", "version"],
            registry=r,
        )
        # Set by the inference stage after each batch, on CUDA only: a CPU worker has no series.
        self.gpu_memory_allocated = Gauge(
            "rdqc_gpu_memory_allocated_bytes",
            "GPU memory held by tensors on the inference device, after the last batch",
            ["device"],
            registry=r,
        )
        self.gpu_memory_reserved = Gauge(
            "rdqc_gpu_memory_reserved_bytes",
            "GPU memory held by PyTorch's caching allocator on the inference device (tensors "
            "and cache), after the last batch",
            ["device"],
            registry=r,
        )
        self._server: WSGIServer | None = None

    def model_load(self, product_line: str, ok: bool) -> None:
        self.model_loads.labels(product_line, "ok" if ok else "failed").inc()

    def set_model_version(self, product_line: str, old: str | None, new: str) -> None:
        if old is not None and old != new:
            self.model_version_info.remove(product_line, old)
        self.model_version_info.labels(product_line, new).set(1)

    def update_gpu_memory(self, probe: GpuMemoryProbe) -> None:
        memory = probe()
        self.gpu_memory_allocated.labels(memory.device).set(memory.allocated_bytes)
        self.gpu_memory_reserved.labels(memory.device).set(memory.reserved_bytes)

    def frames_done(self) -> tuple[int, int]:
        """Frames scored and frames dead-lettered so far, over all labels (any thread may ask)."""
        return _total(self.frames_scored), _total(self.frames_dead_lettered)

    def serve(self, port: int) -> int:
        """Start the HTTP exporter on a daemon thread; returns the bound port (0 picks one)."""
        self._server, _ = start_http_server(port, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _total(counter: Counter) -> int:
    return int(
        sum(
            sample.value
            for family in counter.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )
