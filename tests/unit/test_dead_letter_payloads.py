"""Dead letters always fit their topic: a record too large keeps its payload in object storage
and is sent as a reference with all its original headers; nothing is lost or duplicated.

``FakeBroker`` refuses records by their real batch size, as a broker with ``max.message.bytes``
does, so the sink's own estimate is checked against an independent count.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kafka.errors
import pytest
from kafka.future import Future
from kafka.record.default_records import DefaultRecordBatchBuilder

from worker.backend_factories import dead_letter_payload_store
from worker.errors import SinkError
from worker.frames import Rejection, SourceRecord
from worker.settings import Settings
from worker.sinks import kafka_dead_letters
from worker.sinks.dead_letter_payloads import PayloadOffloader
from worker.sinks.kafka_dead_letters import KafkaDeadLetterSink
from worker.sinks.payload_stores import DirectoryPayloadStore, S3PayloadStore

pytestmark = pytest.mark.unit

LIMIT = 100_000  # the DLQ topic's max.message.bytes in these tests
HEADERS = (("frame_id", b"cam-1-000042"), ("product_line", b"caps"), ("trace", b"\x00\xff"))

Sent = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def batch_bytes(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    """The size of the one-record batch the broker checks against max.message.bytes."""
    body = DefaultRecordBatchBuilder.size_in_bytes(0, 0, key, value, headers)
    return int(DefaultRecordBatchBuilder.header_size_in_bytes() + body)


class FakeBroker:
    """kafka-python's producer as the sink uses it, in front of a topic with a size limit."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.topic: list[Sent] = []
        self.refused = 0

    def producer(self, **config: Any) -> FakeBroker:
        return self

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> Future:
        if batch_bytes(key, value, headers) > self.max_message_bytes:
            self.refused += 1
            return Future().failure(kafka.errors.MessageSizeTooLargeError("record too large"))
        self.topic.append((key, value, headers))
        return Future().success(None)

    def flush(self, timeout: float | None = None) -> None:
        """Every send above completed at once."""

    def close(self, timeout: float | None = None) -> None:
        """Nothing held."""


class MemoryPayloadStore:
    """An object store: ``put`` is durable when it returns; it can fail or hang on demand."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.failures = 0
        self.gate: threading.Event | None = None

    def setup(self) -> None:
        """Always there."""

    def uri_for(self, key: str) -> str:
        return f"memory://payloads/dlq/{key}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.puts.append(key)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.failures:
            self.failures -= 1
            raise SinkError("payload store down")
        self.objects[key] = data


@pytest.fixture
def store() -> MemoryPayloadStore:
    return MemoryPayloadStore()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker(LIMIT)
    monkeypatch.setattr(kafka_dead_letters, "KafkaProducer", fake.producer)
    return fake


@pytest.fixture
def sink(broker: FakeBroker, store: MemoryPayloadStore) -> Iterator[KafkaDeadLetterSink]:
    dead_letters = offloading_sink(store)
    yield dead_letters
    dead_letters.close()


def rejection(
    value: bytes, offset: int = 7, headers: tuple[tuple[str, bytes], ...] = HEADERS
) -> Rejection:
    record = SourceRecord("frames.inbound", 2, offset, b"cam-1", value, headers, 1_700_000)
    return Rejection(record, "payload_too_large", "FrameContractError", "too big")


def offloading_sink(
    store: MemoryPayloadStore, max_record_bytes: int = LIMIT, wait_s: float = 5.0
) -> KafkaDeadLetterSink:
    sink = KafkaDeadLetterSink(
        "broker:9092",
        "frames.dlq",
        worker_id="w-1",
        payloads=PayloadOffloader(store, wait_s=wait_s),
        max_record_bytes=max_record_bytes,
    )
    sink.setup()
    return sink


def test_a_dead_letter_that_fits_is_sent_as_is(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    sink.add(rejection(b"x" * 10_000))
    sink.flush()

    [(key, value, headers)] = broker.topic
    assert (key, value) == (b"cam-1", b"x" * 10_000)
    assert headers[:3] == list(HEADERS)
    assert dict(headers)["rdqc.error.reason"] == b"payload_too_large"
    assert store.objects == {}


def test_an_oversized_dead_letter_is_stored_and_sent_as_a_reference(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    payload = bytes(range(256)) * 1200  # 307,200 bytes, three times the topic's limit

    sink.add(rejection(payload))
    sink.flush()  # one flush: the upload is waited for, then the reference sent

    assert store.objects == {"frames.inbound/2/7.bin": payload}
    [(key, value, headers)] = broker.topic
    assert (key, value) == (b"cam-1", b"")
    assert headers[:3] == list(HEADERS)  # every original header, unchanged, first
    sent = dict(headers)
    assert sent["rdqc.payload.uri"] == b"memory://payloads/dlq/frames.inbound/2/7.bin"
    assert sent["rdqc.payload.bytes"] == b"307200"
    assert sent["rdqc.payload.sha256"] == hashlib.sha256(payload).hexdigest().encode()
    assert sent["rdqc.error.reason"] == b"payload_too_large"
    assert sent["rdqc.source.offset"] == b"7"
    assert broker.refused == 0  # decided before sending, not learnt from the broker


def test_what_is_sent_as_is_always_fits_and_the_margin_is_small(
    sink: KafkaDeadLetterSink, broker: FakeBroker
) -> None:
    for size in range(LIMIT - 3000, LIMIT + 200, 97):
        sink.add(rejection(b"v" * size, offset=size))
    sink.flush()

    assert broker.refused == 0
    as_is = [batch_bytes(k, v, h) for k, v, h in broker.topic if v]
    references = [v for _, v, _ in broker.topic if not v]
    assert as_is
    assert references
    assert LIMIT - 2500 < max(as_is) <= LIMIT  # only a small margin is given away


def test_key_and_headers_count_towards_the_size(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    headers = (*HEADERS, ("notes", b"n" * 60_000))

    sink.add(rejection(b"v" * 60_000, headers=headers))  # the value alone would fit
    sink.flush()

    assert list(store.objects) == ["frames.inbound/2/7.bin"]
    [(_, value, sent)] = broker.topic
    assert value == b""
    assert sent[:4] == list(headers)


def test_headers_too_large_even_for_a_reference_are_stored_beside_the_payload(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    hostile = (*HEADERS, ("junk", b"j" * 150_000))

    sink.add(rejection(b"v" * 1000, headers=hostile))
    sink.flush()

    [(key, value, headers)] = broker.topic
    assert (key, value) == (None, b"")
    assert all(name.startswith("rdqc.") for name, _ in headers)
    sent = dict(headers)
    assert sent["rdqc.record.uri"] == b"memory://payloads/dlq/frames.inbound/2/7.record.json"
    assert store.objects["frames.inbound/2/7.bin"] == b"v" * 1000
    stored = json.loads(store.objects["frames.inbound/2/7.record.json"])
    assert base64.b64decode(stored["key_base64"]) == b"cam-1"
    assert [(h["name"], base64.b64decode(h["value_base64"])) for h in stored["headers"]] == list(
        hostile
    )


def test_a_record_the_broker_refuses_as_too_large_is_stored_instead(
    broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    sink = offloading_sink(store, max_record_bytes=1_000_000)  # the topic takes 100,000
    payload = b"p" * 300_000
    sink.add(rejection(payload))

    with pytest.raises(SinkError, match="1 dead letters not sent yet"):
        sink.flush()  # refused: its payload is being stored now, so this flush is not durable
    sink.flush()

    assert broker.refused == 1
    [(_, value, headers)] = broker.topic
    assert value == b""
    assert headers[:3] == list(HEADERS)
    assert store.objects == {"frames.inbound/2/7.bin": payload}
    sink.close()


def test_a_redelivered_dead_letter_overwrites_its_object(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    payload = b"p" * 200_000
    for _ in range(2):
        sink.add(rejection(payload))
        sink.flush()

    assert store.puts == ["frames.inbound/2/7.bin"] * 2
    assert list(store.objects) == ["frames.inbound/2/7.bin"]
    uris = {dict(headers)["rdqc.payload.uri"] for _, _, headers in broker.topic}
    assert uris == {b"memory://payloads/dlq/frames.inbound/2/7.bin"}


def test_a_failing_store_fails_the_flush_and_keeps_the_dead_letter(
    sink: KafkaDeadLetterSink, broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    store.failures = 1
    sink.add(rejection(b"p" * 200_000))

    with pytest.raises(SinkError, match="payload store down"):
        sink.flush()
    assert broker.topic == []  # never a reference to a payload that is not stored

    sink.flush()
    assert len(broker.topic) == 1
    assert list(store.objects) == ["frames.inbound/2/7.bin"]


def test_a_hung_store_fails_the_flush_in_time_and_its_upload_is_kept(
    broker: FakeBroker, store: MemoryPayloadStore
) -> None:
    sink = offloading_sink(store, wait_s=0.2)
    store.gate = threading.Event()
    sink.add(rejection(b"p" * 200_000))

    started = time.monotonic()
    with pytest.raises(SinkError, match="1 dead letters not sent yet"):
        sink.flush()
    assert time.monotonic() - started < 2

    store.gate.set()
    sink.flush()
    assert store.puts == ["frames.inbound/2/7.bin"]  # kept running, not started again
    assert len(broker.topic) == 1
    sink.close()


def test_without_a_payload_store_an_oversized_dead_letter_fails_and_is_kept(
    broker: FakeBroker,
) -> None:
    sink = KafkaDeadLetterSink("broker:9092", "frames.dlq", worker_id="w-1", max_record_bytes=LIMIT)
    sink.setup()
    with pytest.raises(SinkError, match="no payload store is configured"):
        sink.add(rejection(b"p" * 200_000))

    believer = KafkaDeadLetterSink(
        "broker:9092", "frames.dlq", worker_id="w-1", max_record_bytes=1_000_000
    )
    believer.setup()
    believer.add(rejection(b"p" * 200_000))  # the broker will refuse it
    for _ in range(2):  # refused again and again, never dropped
        with pytest.raises(SinkError, match="1 records failed"):
            believer.flush()
    assert broker.refused == 3  # sent by add, then again by each flush: still pending


def test_payloads_go_to_the_heatmap_stores_dlq_prefix_unless_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RDQC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .stack/stack.env

    assert Settings(heatmaps="s3://heat").dead_letter_payloads == "s3://heat/dlq"
    assert Settings(heatmaps="s3://").dead_letter_payloads == "s3://rdqc-heatmaps/dlq"
    assert Settings(heatmaps="dir://./hm/").dead_letter_payloads == "dir://./hm/dlq"
    explicit = Settings(heatmaps="s3://heat", dead_letter_payloads="s3://keep/rejected")
    assert explicit.dead_letter_payloads == "s3://keep/rejected"

    s3_store = dead_letter_payload_store(Settings(heatmaps="s3://heat"))
    assert isinstance(s3_store, S3PayloadStore)
    assert s3_store.uri_for("t/0/1.bin") == "s3://heat/dlq/t/0/1.bin"
    dir_store = dead_letter_payload_store(Settings(heatmaps=f"dir://{tmp_path}/hm"))
    assert isinstance(dir_store, DirectoryPayloadStore)
    assert dir_store.uri_for("t/0/1.bin") == (tmp_path / "hm/dlq/t/0/1.bin").as_uri()


def test_the_directory_store_writes_whole_files_at_their_keys(tmp_path: Path) -> None:
    store = DirectoryPayloadStore(tmp_path / "dlq")
    store.setup()

    store.put("frames.inbound/0/5.bin", b"first", "application/octet-stream")
    store.put("frames.inbound/0/5.bin", b"second", "application/octet-stream")

    assert (tmp_path / "dlq/frames.inbound/0/5.bin").read_bytes() == b"second"
    assert [p.name for p in (tmp_path / "dlq/frames.inbound/0").iterdir()] == ["5.bin"]


def test_an_upload_finishing_after_collect_is_kept_for_the_next_flush(
    store: MemoryPayloadStore,
) -> None:
    offloader = PayloadOffloader(store, wait_s=0.05)
    store.gate = threading.Event()
    offloader.start(offloader.prepare(rejection(b"p" * 10)))
    assert offloader.collect() == []  # still uploading

    store.gate.set()
    deadline = time.monotonic() + 5
    while not store.objects and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SinkError, match="1 dead letters not sent yet"):
        offloader.check()  # finished meanwhile: must not be forgotten before it is sent

    [stored] = offloader.collect()
    assert stored.payload_uri == "memory://payloads/dlq/frames.inbound/2/7.bin"
    offloader.check()
    offloader.close()
