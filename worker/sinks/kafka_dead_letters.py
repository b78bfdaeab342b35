"""Dead letters to a Kafka topic: the original record, untouched, plus ``rdqc.*`` error headers.

See docs/contracts.md §1 ("Dead letters"). ``add`` sends at once and keeps the delivery future;
``flush`` waits for the producer and then confirms every send (sinks/pending.py): a record whose
delivery failed is sent again and ``flush`` raises, so a later flush cannot report it durable
while it is not.
"""

from __future__ import annotations

import kafka.errors
import structlog
from kafka import KafkaProducer
from kafka.future import Future

from worker.errors import SinkError
from worker.frames import Rejection
from worker.kafka_client import KafkaSecurity, client_kwargs
from worker.sinks.pending import KafkaDelivery, PendingWrites

log = structlog.get_logger(__name__)

# Exception text can embed a whole payload repr; a header is not the place for that.
MAX_MESSAGE_CHARS = 4096
# Frames may be up to 20 MiB (RDQC_MAX_PAYLOAD_BYTES) and must fit with their headers.
DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024


def _describe(rejection: Rejection) -> str:
    record = rejection.record
    return f"{record.topic}[{record.partition}]@{record.offset} ({rejection.reason})"


class KafkaDeadLetterSink:
    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        *,
        worker_id: str,
        client_id: str = "rdqc-dead-letters",
        security: KafkaSecurity | None = None,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        delivery_timeout_s: float = 30.0,
        bootstrap_timeout_s: float = 15.0,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._worker_id = worker_id
        self._client_id = client_id
        self._security = security or KafkaSecurity()
        self._max_request_size = max_request_size
        self._delivery_timeout_s = delivery_timeout_s
        self._bootstrap_timeout_s = bootstrap_timeout_s
        self._producer: KafkaProducer | None = None
        self._pending = PendingWrites(self._send, _describe)

    def setup(self) -> None:
        timeout_ms = int(self._bootstrap_timeout_s * 1000)
        request_timeout_ms = min(10_000, int(self._delivery_timeout_s * 1000))
        try:
            self._producer = KafkaProducer(
                **client_kwargs(self._bootstrap_servers, self._security, client_id=self._client_id),
                acks="all",
                # Retries are bounded by delivery_timeout_ms, not by a count.
                retries=2**31 - 1,
                enable_idempotence=True,
                delivery_timeout_ms=int(self._delivery_timeout_s * 1000),
                request_timeout_ms=request_timeout_ms,
                max_block_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                max_request_size=self._max_request_size,
            )
            # Fails here, not at the first rejection, when the topic cannot be found.
            self._producer.partitions_for(self._topic)
        except kafka.errors.KafkaError as exc:
            raise SinkError(
                f"Kafka dead-letter sink: topic {self._topic!r} on {self._bootstrap_servers} not "
                f"available within {self._bootstrap_timeout_s:g} s: {exc}"
            ) from exc

    def add(self, rejection: Rejection) -> None:
        self._pending.add(rejection)

    def flush(self) -> None:
        if not self._pending:
            return
        try:
            self._require_producer().flush(timeout=self._delivery_timeout_s)
        except kafka.errors.KafkaTimeoutError as exc:
            raise SinkError(
                f"Kafka dead-letter sink: {len(self._pending)} records to {self._topic!r} not "
                f"acknowledged within {self._delivery_timeout_s:g} s"
            ) from exc
        self._pending.confirm(
            lambda count, first, error: (
                f"Kafka dead-letter sink: {count} records not written to {self._topic!r} "
                f"(first: {first}): {error}"
            )
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self._delivery_timeout_s)
            self._producer = None

    def _require_producer(self) -> KafkaProducer:
        if self._producer is None:
            raise SinkError("Kafka dead-letter sink used before setup()")
        return self._producer

    def _send(self, rejection: Rejection) -> KafkaDelivery:
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
        headers = [
            *record.headers,
            *((name, value.encode("utf-8")) for name, value in error_headers.items()),
        ]
        try:
            future: Future = self._require_producer().send(
                self._topic, value=record.value, key=record.key, headers=headers
            )
        except kafka.errors.KafkaError as exc:
            # Raised before anything was sent (metadata or buffer wait, size limit): reported
            # by flush like a failed delivery, so add never raises.
            log.warning("dead_letter_send_failed", record=_describe(rejection), error=str(exc))
            return KafkaDelivery(Future().failure(exc))
        return KafkaDelivery(future)
