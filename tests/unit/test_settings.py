"""Settings: env nesting, the env file, validation messages, secrets kept out of logs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.backend_urls import mask_url, parse_backend_url
from worker.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RDQC_* from the caller's shell, and no .stack/stack.env of the checkout."""
    for name in list(os.environ):
        if name.upper().startswith("RDQC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = Settings()
    assert settings.source == "dir://./frames"
    assert settings.dead_letters == "dir://./rejected"  # beside the frames folder
    assert settings.models.url == "dir://./models"
    assert settings.kafka.topic == "frames.inbound"
    assert settings.max_payload_bytes == 20 * 1024 * 1024
    assert settings.worker_id.endswith(f"-{os.getpid()}")
    assert (settings.heartbeat.interval_s, settings.heartbeat.ttl_s) == (5, 15)


def test_environment_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_KAFKA__TOPIC", "frames.line7")
    monkeypatch.setenv("RDQC_BATCHING__MAX_SIZE", "8")
    monkeypatch.setenv("RDQC_PRECISION", "bf16")
    monkeypatch.setenv("RDQC_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.kafka.topic == "frames.line7"
    assert settings.batching.max_size == 8
    assert settings.precision == "bf16"
    assert settings.log_level == "DEBUG"


def test_models_is_a_url_and_a_section_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Helm chart sets RDQC_MODELS=s3://... next to RDQC_MODELS__POLL_S."""
    monkeypatch.setenv("RDQC_MODELS", "s3://rdqc-models")
    monkeypatch.setenv("RDQC_MODELS__POLL_S", "5")
    monkeypatch.setenv("RDQC_MODELS__CACHE_DIR", "/var/cache/rdqc/models")
    settings = Settings()
    assert settings.models.url == "s3://rdqc-models"
    assert settings.models.poll_s == 5
    assert settings.models.cache_dir == Path("/var/cache/rdqc/models")
    assert Settings(models="dir:///srv/models").models.url == "dir:///srv/models"


def test_env_file_from_rdqc_env_file_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "worker.env"
    env_file.write_text("RDQC_KAFKA__BOOTSTRAP_SERVERS=10.0.0.5:9092\nRDQC_KAFKA__TOPIC=t1\n")
    monkeypatch.setenv("RDQC_ENV_FILE", str(env_file))
    monkeypatch.setenv("RDQC_KAFKA__TOPIC", "t2")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "10.0.0.5:9092"
    assert settings.kafka.topic == "t2"


def test_missing_env_file_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_ENV_FILE", "/nonexistent/stack.env")
    assert Settings().kafka.bootstrap_servers == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("field", "url", "allowed"),
    [
        ("source", "redis://x", "kafka://, dir://"),
        ("scores", "s3://bucket", "redis://, file://"),
        ("heatmaps", "file://x", "s3://, dir://"),
        ("models", "http://x", "s3://, dir://"),
        ("dead_letters", "s3://x", "kafka://, dir://"),
    ],
)
def test_unknown_url_scheme_lists_the_allowed_ones(
    monkeypatch: pytest.MonkeyPatch, field: str, url: str, allowed: str
) -> None:
    monkeypatch.setenv(f"RDQC_{field.upper()}", url)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert f"{field}: unknown scheme" in message
    assert allowed in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RDQC_BATCHING__MAX_SIZE", "0", "greater than 0"),
        ("RDQC_BATCHING__MAX_QUEUE", "8", "max_queue (8) must be >= batching.max_size"),
        ("RDQC_MIN_DIMENSION", "9000", "min_dimension (9000) must be <= max_dimension"),
        ("RDQC_KAFKA__TOPC", "x", "Extra inputs are not permitted"),
        ("RDQC_DEVICE", "gpu", "use auto, cpu, cuda"),
        ("RDQC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL", "needs sasl_mechanism"),
        ("RDQC_SOURCE", "frames", "expected SCHEME://LOCATION"),
        ("RDQC_HEARTBEAT__TTL_S", "9", "heartbeat.ttl_s (9.0) must be >= 2 x heartbeat.interval_s"),
    ],
)
def test_invalid_values_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=re.escape(expected)):
        Settings()


def test_dead_letters_follow_a_kafka_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_SOURCE", "kafka://")
    monkeypatch.setenv("RDQC_KAFKA__DLQ_TOPIC", "frames.rejected")
    assert Settings().dead_letters == "kafka://frames.rejected"
    assert Settings(source="dir:///data/in/").dead_letters == "dir:///data/rejected"
    assert Settings(dead_letters="dir://./dlq").dead_letters == "dir://./dlq"


def test_secrets_are_not_in_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_REDIS__URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("RDQC_S3__ACCESS_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("RDQC_S3__SECRET_KEY", "s3-secret-value")
    monkeypatch.setenv("RDQC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RDQC_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RDQC_KAFKA__SASL_USERNAME", "worker")
    monkeypatch.setenv("RDQC_KAFKA__SASL_PASSWORD", "sasl-secret-value")
    monkeypatch.setenv("RDQC_SOURCE", "kafka://svc:pw-in-url@broker")
    settings = Settings()
    text = json.dumps(settings.redacted())
    for secret in ("hunter2", "AKIAEXAMPLE", "s3-secret-value", "sasl-secret-value", "pw-in-url"):
        assert secret not in text
    assert settings.redacted()["redis"]["url"] == "redis://:**********@redis:6379/0"
    assert settings.redis.url.get_secret_value() == "redis://:hunter2@redis:6379/0"
    assert "hunter2" not in repr(settings)


def test_parse_backend_url_and_mask_url() -> None:
    assert parse_backend_url("kafka://") == ("kafka", "")
    assert parse_backend_url("DIR://./frames") == ("dir", "./frames")
    assert mask_url("redis://user:pw@h:1/0") == "redis://user:**********@h:1/0"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"
    assert mask_url("not a url") == "not a url"


def test_topics_section_defaults_and_the_env_names_the_chart_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings().topics
    assert (defaults.partitions, defaults.replication_factor) == (12, 1)
    assert (defaults.inbound_retention_hours, defaults.dlq_retention_hours) == (24, 336)

    for name, value in {
        "RDQC_TOPICS__PARTITIONS": "6",
        "RDQC_TOPICS__REPLICATION_FACTOR": "3",
        "RDQC_TOPICS__INBOUND_RETENTION_HOURS": "12",
        "RDQC_TOPICS__DLQ_RETENTION_HOURS": "720",
    }.items():
        monkeypatch.setenv(name, value)
    topics = Settings().topics
    assert (topics.partitions, topics.replication_factor) == (6, 3)
    assert (topics.inbound_retention_hours, topics.dlq_retention_hours) == (12, 720)

    monkeypatch.setenv("RDQC_TOPICS__PARTITIONS", "0")
    with pytest.raises(ValidationError, match=r"topics\.partitions"):
        Settings()
