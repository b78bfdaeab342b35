"""The pipeline's tuning knobs, filled in from the worker's settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineConfig:
    max_batch_size: int = 32
    max_wait_s: float = 0.02
    max_queue: int = 512  # frames polled and not yet done; reaching it pauses the source
    max_inflight_bytes: int = 512 * 1024 * 1024  # what those frames hold; reaching it pauses too
    max_poll_records: int = 256
    decode_threads: int = 2
    model_poll_s: float = 30.0
    shutdown_grace_s: float = 30.0
    sink_retry_s: float = 0.5  # first wait after a failed flush; doubles up to 30 s
