"""`rdqc topics ensure` against the real Kafka: it creates both topics as the settings say, a
second run changes nothing, a too small dead-letter limit is raised without touching the
topic's other configs, fewer partitions are added only when asked, and `--check` changes
nothing and exits 1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import unique_name
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import UnknownTopicOrPartitionError
from stack_endpoints import StackEndpoints
from typer.testing import CliRunner, Result

from worker.cli import app

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
INBOUND_LIMIT = 20 * MIB + 64 * 1024  # RDQC_MAX_PAYLOAD_BYTES plus the record margin
DLQ_LIMIT = 1_000_000  # RDQC_KAFKA__DLQ_MAX_RECORD_BYTES
PARTITIONS = 3


@dataclass(frozen=True)
class Topics:
    inbound: str
    dlq: str

    def env(self, stack: StackEndpoints) -> dict[str, str]:
        """The settings of a run against this test's topics, and nothing from an env file."""
        return {
            **stack.as_env(),
            "RDQC_ENV_FILE": "/nonexistent/stack.env",
            "RDQC_KAFKA__TOPIC": self.inbound,
            "RDQC_KAFKA__DLQ_TOPIC": self.dlq,
            "RDQC_TOPICS__PARTITIONS": str(PARTITIONS),
        }


@contextlib.contextmanager
def fresh_topics(admin: KafkaAdminClient) -> Iterator[Topics]:
    """Two unused topic names; whatever is created under them is deleted afterwards."""
    names = Topics(unique_name(), unique_name())
    yield names
    for name in (names.inbound, names.dlq):
        with contextlib.suppress(UnknownTopicOrPartitionError):
            admin.delete_topics([name], timeout_ms=30_000)


@pytest.fixture
def topics(kafka_admin: KafkaAdminClient) -> Iterator[Topics]:
    with fresh_topics(kafka_admin) as names:
        yield names


def create_topic(
    admin: KafkaAdminClient, name: str, partitions: int, configs: dict[str, str]
) -> None:
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}},
        timeout_ms=30_000,
        wait_for_metadata=True,
    )


def rdqc(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def described(admin: KafkaAdminClient, name: str) -> dict[str, Any]:
    """Partitions, replication and the configs in effect of one topic."""
    (topic,) = admin.describe_topics([name])
    resource = ConfigResource(ConfigResourceType.TOPIC, name)
    configs = admin.describe_configs([resource], config_filter="all")["topic"][name]
    return {
        "partitions": len(topic["partitions"]),
        "replication": len(topic["partitions"][0]["replica_nodes"]),
        **{key: entry["value"] for key, entry in configs.items()},
    }


def verdicts(result: Result) -> dict[tuple[str, str], str]:
    """(topic, property) -> verdict, from the table's lines."""
    rows = [line.split() for line in result.stdout.splitlines()[:-1]]
    return {(row[0], row[1]): row[2] for row in rows}


def test_ensure_creates_both_topics_and_a_second_run_changes_nothing(
    stack: StackEndpoints, kafka_admin: KafkaAdminClient, topics: Topics
) -> None:
    env = topics.env(stack)

    first = rdqc(env, "topics", "ensure")
    second = rdqc(env, "topics", "ensure")

    assert first.exit_code == 0, first.output
    assert set(verdicts(first).values()) == {"created"}
    assert len(verdicts(first)) == 8
    inbound, dlq = described(kafka_admin, topics.inbound), described(kafka_admin, topics.dlq)
    assert (inbound["partitions"], inbound["replication"]) == (PARTITIONS, 1)
    assert inbound["max.message.bytes"] == str(INBOUND_LIMIT)
    assert inbound["retention.ms"] == str(24 * 3600 * 1000)
    assert (dlq["partitions"], dlq["replication"]) == (PARTITIONS, 1)
    assert dlq["max.message.bytes"] == str(DLQ_LIMIT)
    assert dlq["retention.ms"] == str(336 * 3600 * 1000)

    assert second.exit_code == 0, second.output
    assert set(verdicts(second).values()) == {"ok"}
    assert second.stdout.splitlines()[-1] == (
        f"nothing to change: {topics.inbound} and {topics.dlq} match the settings"
    )


def test_a_too_small_dead_letter_limit_is_raised_and_other_configs_are_kept(
    stack: StackEndpoints, kafka_admin: KafkaAdminClient, topics: Topics
) -> None:
    create_topic(
        kafka_admin,
        topics.dlq,
        PARTITIONS,
        {"max.message.bytes": "65536", "retention.ms": "3600000", "compression.type": "gzip"},
    )

    result = rdqc(topics.env(stack), "topics", "ensure", "--json")

    assert result.exit_code == 0, result.output
    changed = [f for f in json.loads(result.stdout) if f["verdict"] == "changed"]
    assert changed == [
        {
            "topic": topics.dlq,
            "property": "retention.ms",
            "verdict": "changed",
            "actual": 3600000,
            "wanted": 336 * 3600 * 1000,
            "minimum": False,
            "fix": "rdqc topics ensure",
        },
        {
            "topic": topics.dlq,
            "property": "max.message.bytes",
            "verdict": "changed",
            "actual": 65536,
            "wanted": DLQ_LIMIT,
            "minimum": True,
            "fix": "rdqc topics ensure",
        },
    ]
    dlq = described(kafka_admin, topics.dlq)
    assert dlq["max.message.bytes"] == str(DLQ_LIMIT)
    assert dlq["retention.ms"] == str(336 * 3600 * 1000)
    assert dlq["compression.type"] == "gzip"  # an incremental change: the rest stays


def test_fewer_partitions_are_a_mismatch_until_add_partitions(
    stack: StackEndpoints, kafka_admin: KafkaAdminClient, topics: Topics
) -> None:
    env = topics.env(stack)
    create_topic(kafka_admin, topics.inbound, 1, {"max.message.bytes": str(INBOUND_LIMIT)})

    reported = rdqc(env, "topics", "ensure")
    added = rdqc(env, "topics", "ensure", "--add-partitions")

    assert reported.exit_code == 1, reported.output
    assert verdicts(reported)[(topics.inbound, "partitions")] == "mismatch"
    assert "fix: rdqc topics ensure --add-partitions" in reported.stdout
    assert added.exit_code == 0, added.output
    assert verdicts(added)[(topics.inbound, "partitions")] == "changed"
    assert described(kafka_admin, topics.inbound)["partitions"] == PARTITIONS


def test_check_exits_1_on_a_mismatch_and_changes_nothing(
    stack: StackEndpoints, kafka_admin: KafkaAdminClient, topics: Topics
) -> None:
    create_topic(kafka_admin, topics.dlq, PARTITIONS, {"max.message.bytes": "65536"})

    result = rdqc(topics.env(stack), "topics", "ensure", "--check")

    assert result.exit_code == 1, result.output
    lines = {
        (row[0], row[1]): " ".join(row[2:])
        for row in map(str.split, result.stdout.splitlines()[:-1])
    }
    assert lines[(topics.dlq, "max.message.bytes")] == (
        "mismatch 65536 (0.1 MiB), wanted >= 1000000 (1.0 MiB); fix: rdqc topics ensure"
    )
    assert lines[(topics.inbound, "partitions")].startswith("mismatch absent, wanted >= 3")
    assert described(kafka_admin, topics.dlq)["max.message.bytes"] == "65536"
    assert topics.inbound not in kafka_admin.list_topics()
