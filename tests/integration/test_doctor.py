"""`rdqc doctor` against the real stack: all OK with Kafka, Redis, MinIO and a published model;
the failure table when MinIO cannot be reached and when the dead-letter topic's record limit is
too small."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from minio import Minio
from stack_endpoints import StackEndpoints
from test_topics_ensure import Topics, create_topic, fresh_topics, rdqc
from worker_harness import make_artifact, publish

from worker.kafka_topics import topic_specs
from worker.settings import Settings

pytestmark = pytest.mark.integration

LINE = "p1"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifact(tmp_path_factory.mktemp("artifact") / "v1", LINE, "v1", seed=3)


@pytest.fixture
def topics(kafka_admin: KafkaAdminClient) -> Iterator[Topics]:
    with fresh_topics(kafka_admin) as names:
        yield names


@pytest.fixture
def env(
    stack: StackEndpoints,
    topics: Topics,
    redis_prefix: str,
    s3_bucket: str,
    heatmap_bucket: str,
    tmp_path: Path,
) -> dict[str, str]:
    """A worker's settings on the stack: Kafka in and dead letters out, Redis scores, S3 models
    (``s3_bucket``) and heatmaps; the CPU, so that no GPU is expected."""
    return {
        **topics.env(stack),
        "RDQC_SOURCE": "kafka://",
        "RDQC_SCORES": "redis://",
        "RDQC_REDIS__PREFIX": redis_prefix,
        "RDQC_MODELS": f"s3://{s3_bucket}",
        "RDQC_MODELS__CACHE_DIR": str(tmp_path / "cache"),
        "RDQC_HEATMAPS": f"s3://{heatmap_bucket}",
        "RDQC_DEVICE": "cpu",
    }


def rows_of(stdout: str) -> dict[str, list[str]]:
    """CHECK -> the lines of its row: status and detail first, then the fix, if any."""
    rows: dict[str, list[str]] = {}
    check = ""
    for line in stdout.splitlines()[1:-1]:
        if line.startswith(" "):
            rows[check].append(line.strip())
        else:
            check, rest = line.split("  ", 1)
            rows[check] = [rest.strip()]
    return rows


def test_all_ok_against_the_real_stack(
    env: dict[str, str], minio_client: Minio, s3_bucket: str, artifact: Path
) -> None:
    publish(minio_client, s3_bucket, artifact, LINE)
    assert rdqc(env, "topics", "ensure").exit_code == 0

    result = rdqc(env, "doctor", "--product-line", LINE)

    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert [check for check, lines in rows.items() if not lines[0].startswith("OK ")] == []
    assert set(rows) >= {
        "settings",
        "kafka",
        f"kafka topic {env['RDQC_KAFKA__TOPIC']}",
        f"kafka topic {env['RDQC_KAFKA__DLQ_TOPIC']}",
        "kafka consumer group",
        "redis",
        "s3",
        f"s3 bucket {s3_bucket}",
        f"model {LINE}",
        "device",
    }
    assert result.stdout.splitlines()[-1].startswith("doctor passed: ")


def test_minio_down_fails_with_the_fix(env: dict[str, str]) -> None:
    closed = "http://127.0.0.1:1"
    assert rdqc(env, "topics", "ensure").exit_code == 0

    result = rdqc({**env, "RDQC_S3__ENDPOINT": closed}, "doctor", "--product-line", LINE)

    assert result.exit_code == 1, result.output
    rows = rows_of(result.stdout)
    status, fix = rows["s3"]
    assert status.startswith(f"FAIL    {closed}: not reachable")
    assert fix == "fix: check RDQC_S3__ENDPOINT and that the store is up and reachable from here"
    assert rows[f"model {LINE}"][0].startswith("FAIL")
    assert rows["redis"][0].startswith("OK")
    assert result.stdout.splitlines()[-1].startswith("doctor failed: ")


def test_a_too_small_dead_letter_topic_fails_with_the_fix(
    env: dict[str, str], kafka_admin: KafkaAdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    inbound, dlq = topic_specs(Settings())
    create_topic(kafka_admin, inbound.name, inbound.partitions, inbound.configs())
    create_topic(
        kafka_admin, dlq.name, dlq.partitions, {**dlq.configs(), "max.message.bytes": "65536"}
    )

    result = rdqc(env, "doctor")

    assert result.exit_code == 1, result.output
    rows = rows_of(result.stdout)
    assert rows[f"kafka topic {dlq.name}"] == [
        "FAIL    max.message.bytes is 65536, wanted at least 1000000",
        "fix: rdqc topics ensure",
    ]
    assert rows[f"kafka topic {inbound.name}"][0].startswith("OK")
