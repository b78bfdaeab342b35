"""The model store in an S3-compatible bucket (docs/contracts.md §4)."""

from __future__ import annotations

import io
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from worker.errors import ModelLoadError, ModelPublishError
from worker.s3_client import S3_ERRORS


class S3ModelFiles:
    def __init__(self, client: Minio, bucket: str, *, create_bucket: bool = False) -> None:
        """``create_bucket`` is for publishing; a worker expects the bucket to exist."""
        self._client = client
        self._bucket = bucket
        self._create_bucket = create_bucket

    def setup(self) -> None:
        try:
            if self._client.bucket_exists(self._bucket):
                return
            if not self._create_bucket:
                raise ModelLoadError(f"model bucket s3://{self._bucket} does not exist")
            self._client.make_bucket(self._bucket)
        except S3_ERRORS as exc:
            raise ModelLoadError(f"model bucket s3://{self._bucket}: {exc}") from exc

    def where(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def read(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(self._bucket, key)
            try:
                data: bytes = response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise ModelLoadError(f"cannot read {self.where(key)}: {exc}") from exc
        except S3_ERRORS as exc:
            raise ModelLoadError(f"cannot read {self.where(key)}: {exc}") from exc
        return data

    def write(self, key: str, data: bytes | Path) -> None:
        try:
            if isinstance(data, Path):
                self._client.fput_object(self._bucket, key, str(data))
            else:  # bytes are the store's own JSON files: pointers and history entries
                self._client.put_object(
                    self._bucket, key, io.BytesIO(data), len(data), content_type="application/json"
                )
        except S3_ERRORS as exc:
            raise ModelPublishError(f"cannot write {self.where(key)}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._client.remove_object(self._bucket, key)
        except S3_ERRORS as exc:
            raise ModelPublishError(f"cannot delete {self.where(key)}: {exc}") from exc

    def names(self, prefix: str) -> list[str]:
        try:
            listed = self._client.list_objects(self._bucket, prefix=prefix, recursive=False)
            return sorted(obj.object_name.removeprefix(prefix) for obj in listed if obj.object_name)
        except S3_ERRORS as exc:
            raise ModelLoadError(f"cannot list {self.where(prefix)}: {exc}") from exc

    def download(self, key: str, destination: Path) -> None:
        try:
            # Downloads to a temp file and renames it, so a file is whole or absent.
            self._client.fget_object(self._bucket, key, str(destination))
        except S3_ERRORS as exc:
            raise ModelLoadError(f"cannot download {self.where(key)}: {exc}") from exc
