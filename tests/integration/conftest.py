"""Fixtures for tests against the real local stack (Kafka, Redis, MinIO from `make stack-up`).

Session fixtures:
    stack          StackEndpoints read from .stack/stack.env (override: RDQC_STACK_ENV); skips
                   the test when the stack is not up, or fails it when CI=true.
    kafka_admin    kafka.KafkaAdminClient
    redis_client   redis.Redis[bytes] (no decode_responses)
    minio_client   minio.Minio

Per-test isolation (names from uuid4, cleaned up afterwards):
    kafka_topic    str, a fresh topic with 4 partitions, deleted after the test
    redis_prefix   str, a unique key prefix ("rdqc-test:<hex>", no trailing ":"); every key
                   starting with it is deleted after the test
    s3_bucket      str, a fresh bucket, emptied and removed after the test
    heatmap_bucket str, another one
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError
from minio import Minio
from minio.deleteobjects import DeleteObject
from stack_endpoints import StackEndpoints, StackEnvError, env_file_path, make_minio, probe

TEST_NAME_PREFIX = "rdqc-test"
TOPIC_PARTITIONS = 4


def unique_name(separator: str = "-") -> str:
    return f"{TEST_NAME_PREFIX}{separator}{uuid.uuid4().hex}"


def _stack_unavailable(reason: str) -> NoReturn:
    message = f"local stack not available: {reason}. Run `make stack-up` first."
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def stack() -> StackEndpoints:
    path = env_file_path()
    try:
        endpoints = StackEndpoints.from_env_file(path)
    except StackEnvError as exc:
        problem = str(exc)
    else:
        problems = probe(endpoints)
        if not problems:
            return endpoints
        problem = "; ".join(problems)
    _stack_unavailable(problem)


@pytest.fixture(scope="session")
def kafka_admin(stack: StackEndpoints) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="rdqc-tests")
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def redis_client(stack: StackEndpoints) -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=10, socket_connect_timeout=5)
    yield client
    client.close()


@pytest.fixture(scope="session")
def minio_client(stack: StackEndpoints) -> Minio:
    return make_minio(stack)


@pytest.fixture
def kafka_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    name = unique_name()
    kafka_admin.create_topics(
        {name: {"num_partitions": TOPIC_PARTITIONS, "replication_factor": 1}},
        timeout_ms=30_000,
        wait_for_metadata=True,
    )
    yield name
    with contextlib.suppress(UnknownTopicOrPartitionError):
        kafka_admin.delete_topics([name], timeout_ms=30_000)


@pytest.fixture
def redis_prefix(redis_client: redis.Redis[bytes]) -> Iterator[str]:
    prefix = unique_name(separator=":")
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@contextlib.contextmanager
def _temporary_bucket(minio_client: Minio) -> Iterator[str]:
    name = unique_name()
    minio_client.make_bucket(name)
    yield name
    to_delete = (
        DeleteObject(obj.object_name, obj.version_id)
        for obj in minio_client.list_objects(name, recursive=True, include_version=True)
        if obj.object_name is not None
    )
    errors = list(minio_client.remove_objects(name, to_delete))
    assert not errors, f"could not empty bucket {name}: {errors}"
    minio_client.remove_bucket(name)


@pytest.fixture
def s3_bucket(minio_client: Minio) -> Iterator[str]:
    with _temporary_bucket(minio_client) as name:
        yield name


@pytest.fixture
def heatmap_bucket(minio_client: Minio) -> Iterator[str]:
    """A second fresh bucket, for heatmaps, next to ``s3_bucket`` holding the models."""
    with _temporary_bucket(minio_client) as name:
        yield name
