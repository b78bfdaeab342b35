"""The sections of the worker's settings (``RDQC_KAFKA__*``, ``RDQC_REDIS__*``, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from worker.backend_urls import check_backend_url

MIB = 1024 * 1024

_SECURITY_PROTOCOLS_WITH_SASL = ("SASL_PLAINTEXT", "SASL_SSL")

Positive = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    # A misspelt RDQC_KAFKA__TOPC fails at start instead of being silently ignored.
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "frames.inbound"
    dlq_topic: str = "frames.dlq"
    group_id: str = "rdqc-workers"
    client_id: str = "rdqc-worker"
    max_poll_records: Positive = 256
    max_poll_interval_ms: Positive = 300_000
    session_timeout_ms: Positive = 45_000
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Bounds of the dead-letter producer; a flush waits at most dlq_delivery_timeout_s for acks.
    dlq_delivery_timeout_s: Seconds = 10
    # How long a send may block waiting for topic metadata or buffer space.
    dlq_send_timeout_s: Seconds = 2
    # Largest dead-letter record sent as is (the DLQ topic's max.message.bytes, broker default
    # 1,000,000); a larger one keeps its payload in object storage (RDQC_DEAD_LETTER_PAYLOADS).
    dlq_max_record_bytes: Annotated[int, Field(ge=64 * 1024)] = 1_000_000
    # What the consumer buffers from the brokers, outside the pipeline's in-flight budget.
    fetch_max_mb: Positive = Field(
        default=50, description="Most MiB one fetch response may carry, over all partitions"
    )
    max_partition_fetch_mb: Positive = Field(
        default=1,
        description="Most MiB per partition in one fetch (a larger single record still comes)",
    )

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        if self.security_protocol in _SECURITY_PROTOCOLS_WITH_SASL and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"kafka.security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        return self


class RedisSettings(_Section):
    # A secret because the URL may carry the password (redis://:pass@host:6379/0).
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    prefix: str = "rdqc"
    ttl_s: Positive = 7 * 24 * 3600
    stream_maxlen: Positive = 100_000
    flagged_maxlen: Positive = 10_000
    # Per attempt: connecting, then each command's round trip.
    connect_timeout_s: Seconds = 1
    socket_timeout_s: Seconds = 2


class S3Settings(_Section):
    endpoint: str = "http://127.0.0.1:9000"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str = "us-east-1"
    heatmap_bucket: str = "rdqc-heatmaps"
    model_bucket: str = "rdqc-models"
    # Per request, no retries below ours (worker/s3_client.py).
    connect_timeout_s: Seconds = 2
    read_timeout_s: Seconds = 10
    # The longest a flush waits for its uploads (heatmaps, dead-letter payloads); unfinished
    # ones keep running, the flush fails and the next one waits for them again.
    flush_timeout_s: Seconds = 5


class BatchingSettings(_Section):
    max_size: Positive = 32
    max_wait_ms: Annotated[float, Field(ge=0)] = 20
    # Frames polled but not yet committed-ready; reaching it pauses polling (backpressure).
    max_queue: Positive = 512
    max_inflight_mb: Positive = Field(
        default=512,
        description=(
            "MiB the frames in flight may hold (payloads, decoded images, model inputs); "
            "reaching it pauses polling. One frame is always admitted, however large"
        ),
    )

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> Self:
        if self.max_queue < self.max_size:
            raise ValueError(
                f"batching.max_queue ({self.max_queue}) must be >= batching.max_size "
                f"({self.max_size}), or no batch could ever fill"
            )
        return self


class HeartbeatSettings(_Section):
    """Each worker's heartbeat record (docs/contracts.md §2), beside its scores."""

    interval_s: Seconds = Field(default=5, description="Seconds between heartbeat writes")
    ttl_s: Seconds = Field(
        default=15,
        description=(
            "Seconds a heartbeat outlives its last write: a worker silent that long is no "
            "longer listed"
        ),
    )

    @model_validator(mode="after")
    def _outlives_a_missed_write(self) -> Self:
        if self.ttl_s < 2 * self.interval_s:
            raise ValueError(
                f"heartbeat.ttl_s ({self.ttl_s}) must be >= 2 x heartbeat.interval_s "
                f"({self.interval_s}), or one slow write would make a live worker vanish"
            )
        return self


class ModelStoreSettings(_Section):
    url: str = "dir://./models"
    poll_s: Annotated[float, Field(gt=0)] = 30
    max_resident: Positive = 8
    cache_dir: Path = Field(default=Path("~/.cache/rdqc/models"), validate_default=True)
    warmup: bool = True

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        return check_backend_url("models", url)

    @field_validator("cache_dir")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        return path.expanduser()


class ShadowSettings(_Section):
    """Shadow testing: a line's candidate model (``{line}/shadow.json``) scores its frames too."""

    enabled: bool = Field(
        default=True,
        description=(
            "Look for shadow candidates and score frames with them besides the live model; "
            "results go to the shadow stream (or shadow.jsonl beside the scores file)"
        ),
    )
    max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description=(
            "The most of the inference thread's time shadow scoring may take; frames beyond "
            "it are not shadow-scored (rdqc_shadow_dropped_total)"
        ),
    )


class TopicsSettings(_Section):
    """The Kafka topics ``rdqc topics ensure`` creates and checks: frames in, dead letters.

    Their ``max.message.bytes`` is derived from the payload limits (worker/kafka_topics.py),
    not set here, so the topics always take what the worker may send or be sent.
    """

    partitions: Positive = Field(
        default=12,
        description=(
            "Partitions of each topic; the most workers that can share the inbound topic. "
            "`rdqc topics ensure --add-partitions` raises it on an existing topic"
        ),
    )
    replication_factor: Positive = Field(
        default=1, description="Replicas of each partition; checked, never changed in place"
    )
    inbound_retention_hours: Positive = Field(
        default=24, description="How long the inbound topic keeps frames (retention.ms)"
    )
    dlq_retention_hours: Positive = Field(
        default=336, description="How long the dead-letter topic keeps records (retention.ms)"
    )
