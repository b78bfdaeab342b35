"""Heatmap PNGs to S3-compatible object storage (docs/contracts.md §3).

``add`` starts the upload at once on a small thread pool, so uploads overlap with scoring the
next batch; ``flush`` waits for them. An upload that still fails after its retries is started
again and ``flush`` raises, so a later flush cannot report it durable while it is not.
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import structlog
import urllib3.exceptions
from minio import Minio
from minio.error import MinioException, S3Error, ServerError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.sinks.object_keys import heatmap_key

log = structlog.get_logger(__name__)

_TRANSIENT_CODES = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"})


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError):
        return True
    return isinstance(exc, S3Error) and exc.code in _TRANSIENT_CODES


@dataclass
class _Upload:
    meta: FrameMeta
    key: str
    png: bytes
    future: Future[None]


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
        self._pending: list[_Upload] = []

    def setup(self) -> None:
        try:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)
                log.info("heatmap_bucket_created", bucket=self._bucket)
        except S3Error as exc:
            # Another worker may have created it between the check and the create.
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise SinkError(f"S3 heatmap sink: bucket {self._bucket!r}: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise SinkError(f"S3 heatmap sink: bucket {self._bucket!r}: {exc}") from exc

    def uri_for(self, meta: FrameMeta) -> str:
        return f"s3://{self._bucket}/{heatmap_key(meta)}"

    def add(self, meta: FrameMeta, png: bytes) -> str:
        key = heatmap_key(meta)
        self._pending.append(_Upload(meta, key, png, self._pool.submit(self._upload, key, png)))
        return f"s3://{self._bucket}/{key}"

    def flush(self) -> None:
        if not self._pending:
            return
        wait([upload.future for upload in self._pending])
        failed = [upload for upload in self._pending if upload.future.exception() is not None]
        if not failed:
            self._pending = []
            return
        first = failed[0]
        error = first.future.exception()
        for upload in failed:
            upload.future = self._pool.submit(self._upload, upload.key, upload.png)
        self._pending = failed
        frames = ", ".join(upload.meta.frame_id for upload in failed[:5])
        raise SinkError(
            f"S3 heatmap sink: {len(failed)} uploads to bucket {self._bucket!r} failed after "
            f"{self._attempts} attempts (frames {frames}); first error: {error}"
        ) from error

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _upload(self, key: str, png: bytes) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._client.put_object(
                    self._bucket, key, io.BytesIO(png), len(png), content_type="image/png"
                )
