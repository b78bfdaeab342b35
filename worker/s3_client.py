"""The worker's S3 client (MinIO's, for any S3-compatible store) and how its errors are sorted.

Both S3 backends, the heatmap sink and the model repository, build their client here and catch
the same errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

import urllib3.exceptions
from minio import Minio
from minio.error import MinioException, S3Error, ServerError

if TYPE_CHECKING:
    from worker.settings import S3Settings

# Everything a call through the client raises when storage fails: S3 error responses and
# connection trouble below them.
S3_ERRORS = (MinioException, urllib3.exceptions.HTTPError)

# S3 error codes a later attempt may well not get; any other (NoSuchBucket, AccessDenied) it
# would get again.
_TRANSIENT_CODES = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"})


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the connection failed, or the server said it is busy or broken."""
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError):
        return True
    return isinstance(exc, S3Error) and exc.code in _TRANSIENT_CODES


def s3_client(s3: S3Settings) -> Minio:
    endpoint = urlparse(s3.endpoint)
    if not endpoint.hostname:
        raise ValueError(f"s3.endpoint {s3.endpoint!r} has no host")
    access = s3.access_key
    secret = s3.secret_key
    return Minio(
        endpoint.netloc,
        access_key=access.get_secret_value() if access else None,
        secret_key=secret.get_secret_value() if secret else None,
        secure=endpoint.scheme == "https",
        region=s3.region,
    )
