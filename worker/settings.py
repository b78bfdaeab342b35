"""Worker settings from ``RDQC_*`` environment variables and an optional env file.

Nested sections use ``__``: ``RDQC_KAFKA__TOPIC=frames.inbound``. The env file is
``$RDQC_ENV_FILE`` if set, else ``.stack/stack.env`` (written by ``make stack-up``); a missing
file is fine. Environment variables win over the file.

Backends are chosen by URL scheme (worker/backend_urls.py lists the schemes each port accepts);
the sections live in worker/settings_sections.py.
The model store section is both a URL and a section: ``RDQC_MODELS=s3://rdqc-models`` sets
``models.url`` while ``RDQC_MODELS__POLL_S=10`` tunes it, as the Helm chart does.
"""

from __future__ import annotations

import os
import posixpath
import re
import socket
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from worker.backend_urls import check_backend_url, mask_url, parse_backend_url
from worker.settings_sections import (
    MIB,
    BatchingSettings,
    HeartbeatSettings,
    KafkaSettings,
    ModelStoreSettings,
    Positive,
    RedisSettings,
    S3Settings,
    ShadowSettings,
    TopicsSettings,
)

DEFAULT_ENV_FILE = ".stack/stack.env"

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

Port = Annotated[int, Field(ge=0, le=65535)]


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RDQC_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
    )

    source: str = "dir://./frames"
    # Empty: derived from ``source``; kafka -> kafka://{kafka.dlq_topic}, dir://X or
    # video://X?... -> the ``rejected`` folder beside X (dir://./frames -> dir://./rejected).
    dead_letters: str = ""
    models: ModelStoreSettings = ModelStoreSettings()
    scores: str = "file://./scores.jsonl"
    heatmaps: str = "dir://./heatmaps"
    # Where dead letters too large for the DLQ topic keep their payload. Empty: the heatmap
    # store's dlq/ prefix (s3://BUCKET -> s3://BUCKET/dlq, dir://X -> dir://X/dlq).
    dead_letter_payloads: str = ""
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = True
    heatmaps_for: Literal["flagged", "all", "none"] = "flagged"
    max_payload_bytes: Positive = 20 * MIB
    min_dimension: Positive = 16
    max_dimension: Positive = 8192
    # Frame input limits beyond the payload and side limits above (docs/contracts.md §1).
    max_pixels: Positive = Field(
        default=40_000_000,
        description="Largest width x height a frame may declare; checked before decoding.",
    )
    decode_threads: Positive = 2
    metrics_port: Port = 9108
    health_port: Port = 8080
    shutdown_grace_s: Annotated[float, Field(gt=0)] = 30
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    s3: S3Settings = S3Settings()
    batching: BatchingSettings = BatchingSettings()
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    shadow: ShadowSettings = ShadowSettings()
    topics: TopicsSettings = TopicsSettings()

    @field_validator("source")
    @classmethod
    def _source_scheme(cls, url: str) -> str:
        return check_backend_url("source", url)

    @field_validator("dead_letters")
    @classmethod
    def _dead_letters_scheme(cls, url: str) -> str:
        return url and check_backend_url("dead_letters", url)

    @field_validator("scores")
    @classmethod
    def _scores_scheme(cls, url: str) -> str:
        return check_backend_url("scores", url)

    @field_validator("heatmaps")
    @classmethod
    def _heatmaps_scheme(cls, url: str) -> str:
        return check_backend_url("heatmaps", url)

    @field_validator("models", mode="before")
    @classmethod
    def _models_url_shorthand(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("device")
    @classmethod
    def _device_name(cls, device: str) -> str:
        if not _DEVICE.fullmatch(device):
            raise ValueError(f"device {device!r}: use auto, cpu, cuda, cuda:N or mps")
        return device

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("dead_letter_payloads")
    @classmethod
    def _dead_letter_payloads_scheme(cls, url: str) -> str:
        return url and check_backend_url("dead_letter_payloads", url)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_dimension > self.max_dimension:
            raise ValueError(
                f"min_dimension ({self.min_dimension}) must be <= max_dimension "
                f"({self.max_dimension})"
            )
        if not self.dead_letters:
            self.dead_letters = self._derived_dead_letters()
        if not self.dead_letter_payloads:
            self.dead_letter_payloads = self._derived_dead_letter_payloads()
        return self

    # After _consistent, so crossed side limits are reported as such.
    @model_validator(mode="after")
    def _pixel_limit_fits(self) -> Self:
        if self.max_pixels < self.min_dimension**2:
            raise ValueError(
                f"max_pixels ({self.max_pixels}) must be >= min_dimension squared "
                f"({self.min_dimension**2}), or no frame could ever pass"
            )
        return self

    def _derived_dead_letter_payloads(self) -> str:
        scheme, location = parse_backend_url(self.heatmaps)
        if scheme == "s3":
            return f"s3://{location.strip('/') or self.s3.heatmap_bucket}/dlq"
        return f"dir://{posixpath.join(location.rstrip('/') or '.', 'dlq')}"

    def _derived_dead_letters(self) -> str:
        scheme, location = parse_backend_url(self.source)
        if scheme == "kafka":
            return f"kafka://{self.kafka.dlq_topic}"
        if scheme == "video":
            # The query (product_line, camera_id) is no part of the file's path.
            location = location.partition("?")[0]
        parent = posixpath.dirname(location.rstrip("/")) or "."
        return f"dir://{posixpath.join(parent, 'rejected')}"

    def redacted(self) -> dict[str, Any]:
        """All settings for a startup log line: secrets masked, passwords cut out of URLs."""
        data = self.model_dump(mode="json")
        data["redis"]["url"] = mask_url(self.redis.url.get_secret_value())
        for key in ("source", "dead_letters", "scores", "heatmaps", "dead_letter_payloads"):
            data[key] = mask_url(data[key])
        data["models"]["url"] = mask_url(data["models"]["url"])
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The env file is chosen when settings are read, not when this module is imported; an
        # explicit Settings(_env_file=...) still wins.
        explicit = None
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            explicit = dotenv_settings.env_file
        env_file = explicit or os.environ.get("RDQC_ENV_FILE") or DEFAULT_ENV_FILE
        return (
            init_settings,
            _EnvSource(settings_cls),
            _DotEnvSource(settings_cls, env_file=env_file),
            file_secret_settings,
        )


def _url_section(
    source: EnvSettingsSource, field_name: str, field: FieldInfo, value: Any
) -> dict[str, Any] | None:
    """``RDQC_MODELS=s3://...`` and any ``RDQC_MODELS__*`` as one section; None otherwise."""
    if field_name != "models" or not isinstance(value, str) or value.lstrip().startswith("{"):
        return None
    return {**source.explode_env_vars(field_name, field, source.env_vars), "url": value}


class _EnvSource(EnvSettingsSource):
    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        section = _url_section(self, field_name, field, value)
        if section is not None:
            return section
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class _DotEnvSource(DotEnvSettingsSource):
    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        section = _url_section(self, field_name, field, value)
        if section is not None:
            return section
        return super().prepare_field_value(field_name, field, value, value_is_complex)
