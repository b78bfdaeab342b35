"""A model repository in an S3-compatible bucket (docs/contracts.md §4)."""

from __future__ import annotations

import io
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from worker.errors import ModelLoadError, ModelPublishError
from worker.modelstore.layout import (
    ARTIFACT_FILES,
    artifact_key,
    decode_pointer,
    encode_pointer,
    pointer_key,
)
from worker.ports import ModelPointer
from worker.s3_client import S3_ERRORS


class S3ModelRepository:
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

    def pointer(self, product_line: str) -> ModelPointer | None:
        key = pointer_key(product_line)
        try:
            response = self._client.get_object(self._bucket, key)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise ModelLoadError(f"cannot read s3://{self._bucket}/{key}: {exc}") from exc
        except S3_ERRORS as exc:
            raise ModelLoadError(f"cannot read s3://{self._bucket}/{key}: {exc}") from exc
        return decode_pointer(data, f"s3://{self._bucket}/{key}")

    def download(self, product_line: str, version: str, destination: str) -> None:
        for name in ARTIFACT_FILES:
            key = artifact_key(product_line, version, name)
            try:
                # Downloads to a temp file and renames it, so a file is whole or absent.
                self._client.fget_object(self._bucket, key, str(Path(destination) / name))
            except S3_ERRORS as exc:
                raise ModelLoadError(f"cannot download s3://{self._bucket}/{key}: {exc}") from exc

    def publish(
        self, artifact_dir: str | Path, product_line: str, version: str, sha256: str
    ) -> None:
        uploads = [
            (artifact_key(product_line, version, name), Path(artifact_dir) / name)
            for name in ARTIFACT_FILES
        ]
        key = pointer_key(product_line)
        try:
            for object_key, path in uploads:
                self._client.fput_object(self._bucket, object_key, str(path))
            data = encode_pointer(ModelPointer(version, sha256))
            self._client.put_object(
                self._bucket, key, io.BytesIO(data), len(data), content_type="application/json"
            )
        except S3_ERRORS as exc:
            raise ModelPublishError(
                f"cannot publish {product_line}/{version} to s3://{self._bucket}: {exc}"
            ) from exc
