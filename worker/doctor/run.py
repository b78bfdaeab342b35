"""All of the doctor's checks, in the order a worker needs them at start."""

from __future__ import annotations

from collections.abc import Sequence

from worker.doctor.device_check import device_row
from worker.doctor.kafka_checks import kafka_rows
from worker.doctor.model_checks import model_rows
from worker.doctor.path_checks import path_rows
from worker.doctor.redis_check import redis_row
from worker.doctor.report import Row, Status
from worker.doctor.s3_checks import s3_rows
from worker.doctor.settings_check import load_settings
from worker.settings import Settings

# What is checked once the settings load; listed as skipped when they do not.
_LATER_CHECKS = ("kafka", "redis", "s3", "paths", "models", "device")


def run_checks(product_lines: Sequence[str], timeout_s: float) -> list[Row]:
    """Every check's row; each service call is bounded by ``timeout_s``."""
    settings, loaded = load_settings()
    if settings is None:
        return [loaded, *(Row(c, Status.SKIP, "settings did not load") for c in _LATER_CHECKS)]
    settings = with_timeouts_at_most(settings, timeout_s)
    return [
        loaded,
        *kafka_rows(settings, timeout_s),
        redis_row(settings),
        *s3_rows(settings),
        *path_rows(settings),
        *model_rows(settings, product_lines),
        device_row(settings.device),
    ]


def with_timeouts_at_most(settings: Settings, timeout_s: float) -> Settings:
    """The settings with the Redis and S3 clients' timeouts cut to ``timeout_s``: a preflight
    should fail fast where a worker may wait longer."""
    redis, s3 = settings.redis, settings.s3
    return settings.model_copy(
        update={
            "redis": redis.model_copy(
                update={
                    "connect_timeout_s": min(redis.connect_timeout_s, timeout_s),
                    "socket_timeout_s": min(redis.socket_timeout_s, timeout_s),
                }
            ),
            "s3": s3.model_copy(
                update={
                    "connect_timeout_s": min(s3.connect_timeout_s, timeout_s),
                    "read_timeout_s": min(s3.read_timeout_s, timeout_s),
                }
            ),
        }
    )
