"""Where dead-letter payloads too large for the dead-letter topic are kept: S3 or a directory.

``put`` returns once the object is durable and raises SinkError otherwise; writing a key again
(a redelivered dead letter) overwrites it. Keys are relative to the store's location, which
includes its prefix (``s3://rdqc-heatmaps/dlq``, ``dir://./heatmaps/dlq``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol

from minio import Minio

from rdcore.files import directories_up_to, fsync_directories, write_atomically
from worker.errors import SinkError
from worker.s3_client import S3_ERRORS, ensure_bucket, is_transient
from worker.sinks.retry import transient_retry


class PayloadStore(Protocol):
    def setup(self) -> None:
        """Check the store is there (create its bucket or directory); raise SinkError if not."""

    def uri_for(self, key: str) -> str: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...


class S3PayloadStore:
    """Objects at ``{prefix}/{key}`` in ``bucket``; thread-safe, as minio's client is."""

    def __init__(self, client: Minio, bucket: str, prefix: str = "", *, attempts: int = 3) -> None:
        if attempts <= 0:
            raise ValueError(f"attempts must be > 0: {attempts}")
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._attempts = attempts

    def setup(self) -> None:
        try:
            ensure_bucket(self._client, self._bucket)
        except S3_ERRORS as exc:
            raise SinkError(f"dead-letter payload store: bucket {self._bucket!r}: {exc}") from exc

    def uri_for(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._object_name(key)}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        name = self._object_name(key)
        try:
            for attempt in transient_retry(self._attempts, is_transient):
                with attempt:
                    self._client.put_object(
                        self._bucket, name, io.BytesIO(data), len(data), content_type=content_type
                    )
        except S3_ERRORS as exc:
            raise SinkError(
                f"dead-letter payload store: s3://{self._bucket}/{name} not written after "
                f"{self._attempts} attempts: {exc}"
            ) from exc

    def _object_name(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key


class DirectoryPayloadStore:
    """Files at ``root/key``, written atomically and fsynced like the directory sinks' files."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()

    def setup(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(
                f"dead-letter payload store: cannot create {self._root}: {exc}"
            ) from exc

    def uri_for(self, key: str) -> str:
        return (self._root / key).as_uri()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._root / key
        try:
            write_atomically(path, data)
            fsync_directories(directories_up_to(path, self._root))
        except OSError as exc:
            raise SinkError(f"dead-letter payload store: cannot write {path}: {exc}") from exc
