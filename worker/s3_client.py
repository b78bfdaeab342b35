"""The worker's S3 client (MinIO's, for any S3-compatible store) and how its errors are sorted.

Both S3 backends, the heatmap sink and the model repository, and the dead-letter payload store
build their client here and catch the same errors.

Every call is bounded: the connection pool gets the settings' connect and read timeouts (seconds,
not minio's default five minutes) and no retries of its own (``retries=False``: urllib3 raises
the first error as itself). ``worker.sinks.retry.transient_retry`` is the one retry policy, so a
hung store costs ``attempts x (connect + read)`` seconds, not minutes of nested retries.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import certifi
import urllib3
import urllib3.exceptions
from minio import Minio
from minio.error import MinioException, S3Error, ServerError

if TYPE_CHECKING:
    from worker.settings_sections import S3Settings

# Everything a call through the client raises when storage fails: S3 error responses and
# connection trouble below them.
S3_ERRORS = (MinioException, urllib3.exceptions.HTTPError)

# S3 error codes a later attempt may well not get; any other (NoSuchBucket, AccessDenied) it
# would get again.
_TRANSIENT_CODES = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"})
# Another worker may have created the bucket between our check and our create.
_BUCKET_RACE_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
# As many parallel connections as minio's own default pool.
_POOL_SIZE = 10


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the connection failed, or the server said it is busy or broken."""
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError):
        return True
    return isinstance(exc, S3Error) and exc.code in _TRANSIENT_CODES


def ensure_bucket(client: Minio, bucket: str) -> bool:
    """Create ``bucket`` unless it exists; True when this call created it. Raises S3_ERRORS."""
    try:
        if client.bucket_exists(bucket):
            return False
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code in _BUCKET_RACE_CODES:
            return False
        raise
    return True


def s3_client(s3: S3Settings) -> Minio:
    endpoint = urlparse(s3.endpoint)
    if not endpoint.hostname:
        raise ValueError(f"s3.endpoint {s3.endpoint!r} has no host")
    access = s3.access_key
    secret = s3.secret_key
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=s3.connect_timeout_s, read=s3.read_timeout_s),
        maxsize=_POOL_SIZE,
        retries=False,
        # The certificates minio's own pool would verify against.
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )
    return Minio(
        endpoint.netloc,
        access_key=access.get_secret_value() if access else None,
        secret_key=secret.get_secret_value() if secret else None,
        secure=endpoint.scheme == "https",
        region=s3.region,
        http_client=http,
    )
