"""Dead letters to a Kafka topic: the original record, untouched, plus ``rdqc.*`` error headers.

See docs/contracts.md §1 ("Dead letters"). ``add`` sends at once and keeps the delivery future;
``flush`` waits for the producer and then confirms every send (sinks/pending.py): a record whose
delivery failed is sent again and ``flush`` raises, so a later flush cannot report it durable
while it is not.

A record that would not fit the topic (estimated larger than ``max_record_bytes``, or refused
by the producer or the broker as too large) keeps its payload in object storage instead and is
sent with an empty value and a reference (sinks/dead_letter_payloads.py), so an oversized frame
never blocks its partition. Every wait is bounded: a flush takes at most the payload uploads'
wait, plus ``delivery_timeout_s`` for the producer, plus one ``send_timeout_s`` for a resend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import kafka.errors
import structlog
from kafka import KafkaProducer
from kafka.future import Future
from kafka.record.default_records import DefaultRecordBatchBuilder

from worker.errors import SinkError
from worker.frames import Rejection
from worker.kafka_client import KafkaSecurity, client_kwargs
from worker.sinks.dead_letter_payloads import Headers, Offload, PayloadOffloader
from worker.sinks.pending import KafkaDelivery, PendingWrites

log = structlog.get_logger(__name__)

# Exception text can embed a whole payload repr; a header is not the place for that.
MAX_MESSAGE_CHARS = 4096
# Frames may be up to 20 MiB (RDQC_MAX_PAYLOAD_BYTES); the producer must not refuse one before
# the broker has had its say: what the broker refuses goes to the payload store.
DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
# The broker's max.message.bytes (1,000,000 by default) applies to the whole record batch.
DEFAULT_MAX_RECORD_BYTES = 1_000_000
# On top of kafka-python's upper-bound estimate: room for a broker counting a little differently.
_SIZE_MARGIN = 1024
_TOO_LARGE = (kafka.errors.MessageSizeTooLargeError, kafka.errors.RecordListTooLargeError)


def record_bytes(key: bytes | None, value: bytes, headers: Headers) -> int:
    """An upper bound of the record batch a record makes, as the broker's limit counts it."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def _describe(rejection: Rejection) -> str:
    record = rejection.record
    return f"{record.topic}[{record.partition}]@{record.offset} ({rejection.reason})"


def _too_large(error: BaseException) -> bool:
    return isinstance(error, _TOO_LARGE)


@dataclass(frozen=True)
class _DeadLetter:
    """A record to send: the original, or (with ``offload``) a reference to its stored payload."""

    rejection: Rejection
    offload: Offload | None = None


class KafkaDeadLetterSink:
    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        *,
        worker_id: str,
        payloads: PayloadOffloader | None = None,
        client_id: str = "rdqc-dead-letters",
        security: KafkaSecurity | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        delivery_timeout_s: float = 10.0,
        send_timeout_s: float = 2.0,
        bootstrap_timeout_s: float = 15.0,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._worker_id = worker_id
        self._payloads = payloads
        self._client_id = client_id
        self._security = security or KafkaSecurity()
        self._max_record_bytes = max_record_bytes
        self._max_request_size = max_request_size
        self._delivery_timeout_s = delivery_timeout_s
        self._send_timeout_s = send_timeout_s
        self._bootstrap_timeout_s = bootstrap_timeout_s
        self._producer: KafkaProducer | None = None
        self._pending = PendingWrites(self._send, lambda letter: _describe(letter.rejection))
        # Set when a send timed out waiting for the brokers: later sends fail at once instead of
        # each waiting send_timeout_s again, until the next flush tries again.
        self._unreachable: kafka.errors.KafkaError | None = None

    def setup(self) -> None:
        if self._payloads is not None:
            self._payloads.setup()
        bootstrap_ms = int(self._bootstrap_timeout_s * 1000)
        delivery_ms = int(self._delivery_timeout_s * 1000)
        try:
            # Called again while a service is still down at start-up: one producer is enough.
            self._producer = self._producer or KafkaProducer(
                **client_kwargs(self._bootstrap_servers, self._security, client_id=self._client_id),
                acks="all",
                # Retries are bounded by delivery_timeout_ms, not by a count.
                retries=2**31 - 1,
                # kafka-python's idempotent producer turns any refused batch (a broker's
                # MESSAGE_TOO_LARGE too) into a fatal state that fails every later send; without
                # it, a retry may duplicate a dead letter (at least once, as everywhere here), and
                # one request in flight keeps their order.
                enable_idempotence=False,
                max_in_flight_requests_per_connection=1,
                delivery_timeout_ms=delivery_ms,
                # Two tries of a request fit in one delivery timeout.
                request_timeout_ms=delivery_ms // 2,
                max_block_ms=int(self._send_timeout_s * 1000),
                bootstrap_timeout_ms=bootstrap_ms,
                max_request_size=self._max_request_size,
            )
            self._wait_for_topic(self._producer)
        except kafka.errors.KafkaError as exc:
            raise SinkError(
                f"Kafka dead-letter sink: topic {self._topic!r} on {self._bootstrap_servers} not "
                f"available within {self._bootstrap_timeout_s:g} s: {exc}"
            ) from exc

    def add(self, rejection: Rejection) -> None:
        letter = _DeadLetter(rejection)
        if self._fits(letter):
            self._pending.add(letter)
        else:
            self._offload(rejection, "larger than max_record_bytes")

    def flush(self) -> None:
        if not self._pending and not self._payloads:
            return
        self._unreachable = None
        if self._payloads is not None:
            for offload in self._payloads.collect():
                self._pending.add(_DeadLetter(offload.rejection, offload))
        try:
            self._require_producer().flush(timeout=self._delivery_timeout_s)
        except kafka.errors.KafkaTimeoutError as exc:
            raise SinkError(
                f"Kafka dead-letter sink: {len(self._pending)} records to {self._topic!r} not "
                f"acknowledged within {self._delivery_timeout_s:g} s"
            ) from exc
        if self._payloads is not None:
            for letter in self._pending.take_failed(_too_large):
                # Uploaded now, sent as a reference by a later flush; this one fails below.
                self._offload(letter.rejection, "refused as too large", stored=letter.offload)
        self._pending.confirm(
            lambda unconfirmed: (
                f"Kafka dead-letter sink: topic {self._topic!r}: {unconfirmed.describe('records')}"
            )
        )
        if self._payloads is not None:
            self._payloads.check()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self._delivery_timeout_s)
            self._producer = None
        if self._payloads is not None:
            self._payloads.close()

    def _offload(self, rejection: Rejection, why: str, stored: Offload | None = None) -> None:
        """Start storing the payload; ``stored``: a reference the broker refused already."""
        if self._payloads is None:
            raise SinkError(
                f"Kafka dead-letter sink: {_describe(rejection)} is {why} for {self._topic!r} "
                "and no payload store is configured"
            )
        offload = stored or self._payloads.prepare(rejection)
        if stored is not None or not self._fits(_DeadLetter(rejection, offload)):
            offload = self._payloads.with_record_stored(offload)
        log.warning(
            "dead letter too large for its topic; payload goes to object storage",
            record=_describe(rejection),
            why=why,
            payload_bytes=len(rejection.record.value),
            payload_uri=offload.payload_uri,
            record_uri=offload.record_uri,
        )
        self._payloads.start(offload)

    def _wait_for_topic(self, producer: KafkaProducer) -> None:
        """Fail at setup, not at the first rejection, when the topic is not found in time: each
        try waits ``send_timeout_s`` (max_block_ms), so it is tried until the bootstrap timeout."""
        deadline = time.monotonic() + self._bootstrap_timeout_s
        while True:
            try:
                producer.partitions_for(self._topic)
            except kafka.errors.KafkaTimeoutError:
                if time.monotonic() >= deadline:
                    raise
            else:
                return

    def _require_producer(self) -> KafkaProducer:
        if self._producer is None:
            raise SinkError("Kafka dead-letter sink used before setup()")
        return self._producer

    def _error_headers(self, rejection: Rejection) -> Headers:
        record = rejection.record
        error_headers = {
            "rdqc.error.class": rejection.error_class,
            "rdqc.error.reason": rejection.reason,
            "rdqc.error.message": rejection.message[:MAX_MESSAGE_CHARS],
            "rdqc.source.topic": record.topic,
            "rdqc.source.partition": str(record.partition),
            "rdqc.source.offset": str(record.offset),
            "rdqc.worker_id": self._worker_id,
        }
        return tuple((name, value.encode("utf-8")) for name, value in error_headers.items())

    def _record(self, letter: _DeadLetter) -> tuple[bytes | None, bytes, Headers]:
        """(key, value, headers) of the dead-letter record."""
        record, offload = letter.rejection.record, letter.offload
        errors = self._error_headers(letter.rejection)
        if offload is None:
            return record.key, record.value, (*record.headers, *errors)
        return offload.key, b"", (*offload.original_headers, *errors, *offload.reference_headers())

    def _fits(self, letter: _DeadLetter) -> bool:
        return record_bytes(*self._record(letter)) + _SIZE_MARGIN <= self._max_record_bytes

    def _send(self, letter: _DeadLetter) -> KafkaDelivery:
        if self._unreachable is not None:
            return KafkaDelivery(Future().failure(self._unreachable))
        key, value, headers = self._record(letter)
        try:
            future: Future = self._require_producer().send(
                self._topic, value=value, key=key, headers=list(headers)
            )
        except kafka.errors.KafkaError as exc:
            # Raised before anything was sent (metadata or buffer wait, size limit): reported
            # by flush like a failed delivery.
            log.warning(
                "dead_letter_send_failed", record=_describe(letter.rejection), error=str(exc)
            )
            if isinstance(exc, kafka.errors.KafkaTimeoutError):
                self._unreachable = exc
            return KafkaDelivery(Future().failure(exc))
        return KafkaDelivery(future)
