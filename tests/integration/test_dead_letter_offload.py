"""Dead letters too large for their topic, against the real Kafka and MinIO: the payload lands
in MinIO byte for byte, the record on the topic points at it and keeps every original header."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import UnknownTopicOrPartitionError
from minio import Minio
from pydantic import SecretStr
from stack_endpoints import StackEndpoints

from worker.errors import SinkError
from worker.frames import Rejection, SourceRecord
from worker.s3_client import s3_client
from worker.settings_sections import S3Settings
from worker.sinks.dead_letter_payloads import PayloadOffloader
from worker.sinks.kafka_dead_letters import KafkaDeadLetterSink
from worker.sinks.payload_stores import S3PayloadStore

pytestmark = pytest.mark.integration

TOPIC_MAX_BYTES = 100_000  # the DLQ topic's max.message.bytes here
HEADERS = (
    ("frame_id", b"cam-07-000041"),
    ("product_line", b"bottle-caps"),
    ("camera_id", b"cam-07"),
    ("trace", b"\x00\x01\xfe\xff"),
)


@pytest.fixture
def small_dlq_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    name = f"rdqc-test-dlq-{uuid.uuid4().hex}"
    kafka_admin.create_topics(
        {
            name: {
                "num_partitions": 1,
                "replication_factor": 1,
                "configs": {"max.message.bytes": str(TOPIC_MAX_BYTES)},
            }
        },
        timeout_ms=30_000,
        wait_for_metadata=True,
    )
    yield name
    with contextlib.suppress(UnknownTopicOrPartitionError):
        kafka_admin.delete_topics([name], timeout_ms=30_000)


def payload_store(stack: StackEndpoints, bucket: str) -> S3PayloadStore:
    """The worker's own client (bounded timeouts, no pool retries), on the test's bucket."""
    settings = S3Settings(
        endpoint=stack.s3_endpoint,
        access_key=SecretStr(stack.s3_access_key),
        secret_key=SecretStr(stack.s3_secret_key),
    )
    return S3PayloadStore(s3_client(settings), bucket, "dlq")


def read_all(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = KafkaTopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    records: list[Any] = []
    deadline = time.monotonic() + 20
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    # A little longer: anything beyond what is expected would be a duplicate.
    for batch in consumer.poll(timeout_ms=1000).values():
        records.extend(batch)
    consumer.close()
    return records


def read_object(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def rejected_frame(payload: bytes) -> Rejection:
    record = SourceRecord("frames.inbound", 3, 41, b"cam-07", payload, HEADERS, 1_795_000_000_000)
    return Rejection(record, "payload_too_large", "FrameContractError", "frame too large")


def test_an_oversized_dead_letter_is_stored_in_minio_and_referenced_with_every_header(
    stack: StackEndpoints, minio_client: Minio, s3_bucket: str, small_dlq_topic: str
) -> None:
    payload = os.urandom(300 * 1024)
    sink = KafkaDeadLetterSink(
        stack.kafka_bootstrap,
        small_dlq_topic,
        worker_id="rdqc-0-1",
        payloads=PayloadOffloader(payload_store(stack, s3_bucket)),
        max_record_bytes=TOPIC_MAX_BYTES,
    )
    sink.setup()

    sink.add(rejected_frame(payload))
    sink.flush()  # succeeds: nothing left for a retry
    sink.close()

    [record] = read_all(stack.kafka_bootstrap, small_dlq_topic, expected=1)
    assert record.key == b"cam-07"
    assert record.value == b""
    assert record.headers[: len(HEADERS)] == list(HEADERS)
    headers = dict(record.headers)
    key = "dlq/frames.inbound/3/41.bin"
    assert headers["rdqc.payload.uri"] == f"s3://{s3_bucket}/{key}".encode()
    assert headers["rdqc.payload.bytes"] == str(len(payload)).encode()
    assert headers["rdqc.payload.sha256"] == hashlib.sha256(payload).hexdigest().encode()
    assert headers["rdqc.error.reason"] == b"payload_too_large"
    assert headers["rdqc.source.offset"] == b"41"
    assert read_object(minio_client, s3_bucket, key) == payload


def test_a_record_the_broker_refuses_as_too_large_is_stored_and_referenced_instead(
    stack: StackEndpoints, minio_client: Minio, s3_bucket: str, small_dlq_topic: str
) -> None:
    payload = os.urandom(300 * 1024)
    sink = KafkaDeadLetterSink(
        stack.kafka_bootstrap,
        small_dlq_topic,
        worker_id="rdqc-0-1",
        payloads=PayloadOffloader(payload_store(stack, s3_bucket)),
        max_record_bytes=1_000_000,  # the broker's default, not this topic's setting
    )
    sink.setup()
    sink.add(rejected_frame(payload))

    with pytest.raises(SinkError, match="not sent yet"):
        sink.flush()  # the broker refused it; its payload is on its way to MinIO
    sink.flush()
    small = SourceRecord("frames.inbound", 3, 42, b"cam-07", b"tiny", HEADERS)
    sink.add(Rejection(small, "undecodable", "ImageReadError", "bad"))
    sink.flush()  # the refusal did not break the producer for later dead letters
    sink.close()

    reference, after = read_all(stack.kafka_bootstrap, small_dlq_topic, expected=2)
    assert reference.value == b""
    assert reference.headers[: len(HEADERS)] == list(HEADERS)
    assert dict(reference.headers)["rdqc.source.offset"] == b"41"
    assert read_object(minio_client, s3_bucket, "dlq/frames.inbound/3/41.bin") == payload
    assert after.value == b"tiny"
