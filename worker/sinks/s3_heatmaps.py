"""Heatmap PNGs to S3-compatible object storage (docs/contracts.md §3).

``add`` starts the upload at once on a small thread pool, so uploads overlap with scoring the
next batch; ``flush`` waits for them (sinks/pending.py). An upload that still fails after its
retries is started again and ``flush`` raises, so a later flush cannot report it durable while it
is not.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from minio import Minio
from minio.error import S3Error

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.s3_client import S3_ERRORS, is_transient
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
        self, client: Minio, bucket: str, *, max_workers: int = 4, attempts: int = 3
    ) -> None:
        if max_workers <= 0 or attempts <= 0:
            raise ValueError(f"max_workers and attempts must be > 0: {max_workers}, {attempts}")
        self._client = client
        self._bucket = bucket
        self._attempts = attempts
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3-heatmaps")
        self._pending = PendingWrites(self._start, lambda upload: upload.meta.frame_id)

    def setup(self) -> None:
        try:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)
                log.info("heatmap_bucket_created", bucket=self._bucket)
        except S3Error as exc:
            # Another worker may have created it between the check and the create.
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise SinkError(f"S3 heatmap sink: bucket {self._bucket!r}: {exc}") from exc
        except S3_ERRORS as exc:
            raise SinkError(f"S3 heatmap sink: bucket {self._bucket!r}: {exc}") from exc

    def uri_for(self, meta: FrameMeta) -> str:
        return f"s3://{self._bucket}/{heatmap_key(meta)}"

    def add(self, meta: FrameMeta, png: bytes) -> str:
        key = heatmap_key(meta)
        self._pending.add(_Upload(meta, key, png))
        return f"s3://{self._bucket}/{key}"

    def flush(self) -> None:
        self._pending.confirm(
            lambda count, frames, error: (
                f"S3 heatmap sink: {count} uploads to bucket {self._bucket!r} failed after "
                f"{self._attempts} attempts (frames {frames}); first error: {error}"
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
