"""Heatmap PNGs from object storage or a folder, by their contract key (docs/contracts.md §3).

The browser never names a path: the app looks a frame up, takes its ``heatmap_uri`` and keeps
only the last four segments, ``{product_line}/{day}/{camera_id}/{frame_id}.png``, which are
made of safe names. So a URI can point nowhere outside the configured bucket or folder, and a
demo folder that was moved since still finds its heatmaps.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from minio import Minio
from minio.error import S3Error

from worker.dashboard.errors import BackendUnavailable, NotFound
from worker.s3_client import S3_ERRORS

_KEY_SEGMENTS = 4
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})


def heatmap_key(uri: str) -> str:
    """``s3://bucket/line/day/cam/frame.png`` or ``file:///…/line/day/cam/frame.png`` ->
    ``line/day/cam/frame.png``; NotFound for anything else."""
    path = unquote(urlparse(uri).path)
    segments = [s for s in path.split("/") if s][-_KEY_SEGMENTS:]
    if (
        len(segments) != _KEY_SEGMENTS
        or not segments[-1].endswith(".png")
        or not all(_SAFE_SEGMENT.fullmatch(s) for s in segments)
    ):
        raise NotFound(f"{uri!r} is no heatmap URI of the contract")
    return "/".join(segments)


class S3HeatmapReader:
    def __init__(self, client: Minio, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def read(self, key: str) -> bytes:
        try:
            response = self._client.get_object(self._bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise NotFound(f"no heatmap {key} in bucket {self._bucket}") from exc
            raise BackendUnavailable("heatmaps", f"object storage: {exc.code}") from exc
        except S3_ERRORS as exc:
            raise BackendUnavailable("heatmaps", f"object storage unreachable: {exc}") from exc

    def ping(self) -> None:
        try:
            self._client.bucket_exists(self._bucket)
        except S3_ERRORS as exc:
            raise BackendUnavailable("heatmaps", f"object storage unreachable: {exc}") from exc


class DirectoryHeatmapReader:
    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()

    def read(self, key: str) -> bytes:
        try:
            return (self._root / key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no heatmap {key} under {self._root}") from exc
        except OSError as exc:
            raise BackendUnavailable("heatmaps", f"cannot read {key}: {exc}") from exc

    def ping(self) -> None:
        # A folder not made yet only means no heatmap was written yet.
        if self._root.exists() and not self._root.is_dir():
            raise BackendUnavailable("heatmaps", f"{self._root} is no folder")
