"""Heatmap PNGs to S3-compatible object storage (docs/contracts.md §3).

``add`` starts the upload at once on a small thread pool, so uploads overlap with scoring the
next batch; ``flush`` waits for them, at most ``flush_timeout_s`` (sinks/pending.py). An upload
that still fails after its retries is started again and ``flush`` raises; one still running
keeps running and ``flush`` raises too. So a later flush cannot report an upload durable while it
is not, and a hung store fails a flush in time instead of hanging the worker's loop.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from minio import Minio

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.s3_client import S3_ERRORS, ensure_bucket, is_transient
from worker.sinks.object_keys import heatmap_key
from worker.sinks.pending import PendingWrites, ThreadDelivery
from worker.sinks.retry import transient_retry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Upload:
    meta: FrameMeta
    key: str
    png: bytes


class S3HeatmapSink:
    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        max_workers: int = 4,
        attempts: int = 3,
        flush_timeout_s: float = 5.0,
    ) -> None:
        if max_workers <= 0 or attempts <= 0 or flush_timeout_s <= 0:
            raise ValueError(
                "max_workers, attempts and flush_timeout_s must be > 0: "
                f"{max_workers}, {attempts}, {flush_timeout_s}"
            )
        self._client = client
        self._bucket = bucket
        self._attempts = attempts
        self._flush_timeout_s = flush_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3-heatmaps")
        self._pending = PendingWrites(self._start, lambda upload: upload.meta.frame_id)

    def setup(self) -> None:
        try:
            if ensure_bucket(self._client, self._bucket):
                log.info("heatmap_bucket_created", bucket=self._bucket)
        except S3_ERRORS as exc:
            raise SinkError(f"S3 heatmap sink: bucket {self._bucket!r}: {exc}") from exc

    def uri_for(self, meta: FrameMeta) -> str:
        return f"s3://{self._bucket}/{heatmap_key(meta)}"

    def add(self, meta: FrameMeta, png: bytes) -> str:
        key = heatmap_key(meta)
        self._pending.add(_Upload(meta, key, png))
        return f"s3://{self._bucket}/{key}"

    def flush(self) -> None:
        self._pending.wait(self._flush_timeout_s)
        self._pending.confirm(
            lambda unconfirmed: (
                f"S3 heatmap sink: bucket {self._bucket!r} (up to {self._attempts} attempts "
                f"each, waited {self._flush_timeout_s:g} s): {unconfirmed.describe('uploads')}"
            )
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _start(self, upload: _Upload) -> ThreadDelivery:
        return ThreadDelivery(self._pool.submit(self._upload, upload.key, upload.png))

    def _upload(self, key: str, png: bytes) -> None:
        for attempt in transient_retry(self._attempts, is_transient):
            with attempt:
                self._client.put_object(
                    self._bucket, key, io.BytesIO(png), len(png), content_type="image/png"
                )
