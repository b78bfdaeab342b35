"""S3 (or MinIO), where heatmaps, models or dead-letter payloads live: the endpoint answers
with the credentials, and the buckets exist."""

from __future__ import annotations

from dataclasses import dataclass

import urllib3.exceptions
from minio import Minio
from minio.error import S3Error

from worker.backend_urls import parse_backend_url
from worker.doctor.report import Row, Status
from worker.s3_client import S3_ERRORS, s3_client
from worker.settings import Settings

CHECK = "s3"
_REACH_FIX = "check RDQC_S3__ENDPOINT and that the store is up and reachable from here"
_CREDENTIALS_FIX = "check RDQC_S3__ACCESS_KEY and RDQC_S3__SECRET_KEY, and the bucket policy"


@dataclass(frozen=True)
class Bucket:
    """A bucket in use; ``created_by_worker``: the worker makes it at start when allowed."""

    name: str
    used_for: str
    setting: str
    created_by_worker: bool


def buckets_in_use(settings: Settings) -> list[Bucket]:
    """The buckets of the S3 URLs among heatmaps, models and dead-letter payloads, once each."""
    s3 = settings.s3
    candidates = (
        (settings.heatmaps, s3.heatmap_bucket, "heatmaps", "RDQC_HEATMAPS", True),
        (settings.models.url, s3.model_bucket, "models", "RDQC_MODELS", False),
        (
            settings.dead_letter_payloads,
            s3.heatmap_bucket,
            "dead-letter payloads",
            "RDQC_DEAD_LETTER_PAYLOADS",
            True,
        ),
    )
    buckets: dict[str, Bucket] = {}
    for url, default, used_for, setting, created in candidates:
        scheme, location = parse_backend_url(url)
        name = location.strip("/").partition("/")[0] or default
        if scheme == "s3" and name not in buckets:
            buckets[name] = Bucket(name, used_for, setting, created)
    return list(buckets.values())


def s3_rows(settings: Settings) -> list[Row]:
    buckets = buckets_in_use(settings)
    if not buckets:
        return [Row(CHECK, Status.SKIP, "not in use (no s3:// heatmaps, models or payloads)")]
    endpoint = settings.s3.endpoint
    try:
        client = s3_client(settings.s3)
    except ValueError as exc:
        return [Row(CHECK, Status.FAIL, str(exc), "set RDQC_S3__ENDPOINT to http(s)://HOST:PORT")]
    try:
        client.bucket_exists(buckets[0].name)
    except S3_ERRORS as exc:
        fix = _CREDENTIALS_FIX if isinstance(exc, S3Error) else _REACH_FIX
        skipped = [Row(_check(b), Status.SKIP, "the s3 check failed") for b in buckets]
        return [Row(CHECK, Status.FAIL, f"{endpoint}: {_reason(exc)}", fix), *skipped]
    reached = Row(CHECK, Status.OK, f"{endpoint} answered, credentials accepted")
    return [reached, *(bucket_row(client, bucket) for bucket in buckets)]


def bucket_row(client: Minio, bucket: Bucket) -> Row:
    check = _check(bucket)
    try:
        exists = client.bucket_exists(bucket.name)
    except S3_ERRORS as exc:
        return Row(check, Status.FAIL, _reason(exc), _CREDENTIALS_FIX)
    if exists:
        return Row(check, Status.OK, f"exists ({bucket.used_for})")
    if bucket.created_by_worker:
        return Row(
            check,
            Status.WARN,
            f"does not exist ({bucket.used_for}); the worker creates it at start",
            f"create it where the worker may not create buckets, or set {bucket.setting}",
        )
    return Row(
        check,
        Status.FAIL,
        f"does not exist ({bucket.used_for}); workers will not start without it",
        f"`rdqc publish` creates it with the first model, or create it, or set {bucket.setting}",
    )


def _check(bucket: Bucket) -> str:
    return f"s3 bucket {bucket.name}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, S3Error):
        return f"refused: {exc.code} ({exc.message})"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"not reachable: {exc.reason}"
    return f"not reachable: {exc}"
