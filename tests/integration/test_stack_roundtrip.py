"""The local stack round-trips data with each real client: Kafka, Redis streams, MinIO."""

from __future__ import annotations

import io
import time
import uuid

import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from minio import Minio
from stack_endpoints import StackEndpoints


def test_kafka_record_with_headers_round_trips(stack: StackEndpoints, kafka_topic: str) -> None:
    key = b"camera-7"
    value = uuid.uuid4().bytes + b"\x00\xffpayload"
    headers = [("content-type", b"application/octet-stream"), ("trace-id", b"\x01\x02"), ("e", b"")]

    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    try:
        sent = producer.send(kafka_topic, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(
        kafka_topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"{kafka_topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while not records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()

    assert len(records) == 1
    record = records[0]
    assert (record.topic, record.partition, record.offset) == (
        kafka_topic,
        sent.partition,
        sent.offset,
    )
    assert record.key == key
    assert record.value == value
    assert list(record.headers) == headers


def test_redis_stream_entry_round_trips(
    redis_client: redis.Redis[bytes], redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:frames"
    fields = {"camera": "camera-7", "blob": b"\x00\x01\xfe\xff", "score": "0.125"}

    entry_id = redis_client.xadd(stream, fields)

    entries = redis_client.xrange(stream)
    assert entries == [
        (entry_id, {b"camera": b"camera-7", b"blob": b"\x00\x01\xfe\xff", b"score": b"0.125"})
    ]


def test_minio_object_round_trips(minio_client: Minio, s3_bucket: str) -> None:
    data = uuid.uuid4().bytes * 1000 + bytes(range(256))
    key = "heatmaps/camera-7/frame-000001.png"

    minio_client.put_object(
        s3_bucket, key, io.BytesIO(data), length=len(data), content_type="image/png"
    )

    response = minio_client.get_object(s3_bucket, key)
    try:
        got = response.read()
    finally:
        response.close()
        response.release_conn()
    assert got == data
    assert minio_client.stat_object(s3_bucket, key).size == len(data)
