"""Dead letters too large for their topic: the payload goes to object storage, the record points.

When a dead-letter record would not fit the dead-letter topic (sinks/kafka_dead_letters.py
decides), its value is stored at ``{topic}/{partition}/{offset}.bin`` in a ``PayloadStore``
(the heatmap store's ``dlq/`` prefix unless ``RDQC_DEAD_LETTER_PAYLOADS`` names another) and
the record sent carries an empty value, its original key and headers, and these headers
(docs/contracts.md §1): ``rdqc.payload.uri``, ``rdqc.payload.bytes``, ``rdqc.payload.sha256``.
The key comes from where the frame was read, so a redelivered dead letter overwrites its object
instead of adding one. If even the original key and headers are too large, they are stored
beside the payload as ``{...}.record.json`` (``rdqc.record.uri``) and the record carries neither.

Uploads run on a small thread pool, so a slow store never blocks the loop for longer than
``wait_s`` per flush: ``collect`` hands back the uploads that finished, to be sent as
references; ``check`` raises SinkError while any is not handed back yet (a failed one is
started again).
"""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from worker.errors import SinkError
from worker.frames import Rejection, SourceRecord
from worker.sinks.object_keys import safe_segment
from worker.sinks.payload_stores import PayloadStore
from worker.sinks.pending import PendingWrites, ThreadDelivery

PAYLOAD_URI = "rdqc.payload.uri"
PAYLOAD_BYTES = "rdqc.payload.bytes"
PAYLOAD_SHA256 = "rdqc.payload.sha256"
RECORD_URI = "rdqc.record.uri"

Headers = tuple[tuple[str, bytes], ...]


def payload_base(record: SourceRecord) -> str:
    """``{topic}/{partition}/{offset}``: one object per source record, whoever rejects it."""
    return f"{safe_segment(record.topic)}/{record.partition}/{record.offset}"


@dataclass(frozen=True)
class Offload:
    """One dead letter whose payload goes to the store, and what its record will carry."""

    rejection: Rejection
    base: str
    payload_uri: str
    sha256: str
    record_uri: str | None = None  # set when the original key and headers are stored too

    @property
    def key(self) -> bytes | None:
        """The dead-letter record's key."""
        return None if self.record_uri else self.rejection.record.key

    @property
    def original_headers(self) -> Headers:
        return () if self.record_uri else self.rejection.record.headers

    def reference_headers(self) -> Headers:
        references = [
            (PAYLOAD_URI, self.payload_uri),
            (PAYLOAD_BYTES, str(len(self.rejection.record.value))),
            (PAYLOAD_SHA256, self.sha256),
        ]
        if self.record_uri:
            references.append((RECORD_URI, self.record_uri))
        return tuple((name, value.encode("utf-8")) for name, value in references)


def _record_json(record: SourceRecord) -> bytes:
    """The original key and headers, base64, for a record too large to carry them."""
    encoded = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key_base64": None if record.key is None else base64.b64encode(record.key).decode(),
        "headers": [
            {"name": name, "value_base64": base64.b64encode(value).decode()}
            for name, value in record.headers
        ],
    }
    return (json.dumps(encoded, indent=2) + "\n").encode("utf-8")


def _describe(offload: Offload) -> str:
    record = offload.rejection.record
    return f"{record.topic}[{record.partition}]@{record.offset}"


class PayloadOffloader:
    def __init__(self, store: PayloadStore, *, wait_s: float = 5.0, max_workers: int = 2) -> None:
        if wait_s <= 0 or max_workers <= 0:
            raise ValueError(f"wait_s and max_workers must be > 0: {wait_s}, {max_workers}")
        self._store = store
        self._wait_s = wait_s
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="dlq-payloads")
        self._pending = PendingWrites(self._start, _describe)

    def __len__(self) -> int:
        return len(self._pending)

    def setup(self) -> None:
        self._store.setup()

    def prepare(self, rejection: Rejection) -> Offload:
        """Where the payload will be, the original key and headers kept on the record."""
        base = payload_base(rejection.record)
        return Offload(
            rejection,
            base,
            self._store.uri_for(f"{base}.bin"),
            hashlib.sha256(rejection.record.value).hexdigest(),
        )

    def with_record_stored(self, offload: Offload) -> Offload:
        """The same, with the original key and headers stored beside the payload instead."""
        return replace(offload, record_uri=self._store.uri_for(f"{offload.base}.record.json"))

    def start(self, offload: Offload) -> None:
        self._pending.add(offload)

    def collect(self) -> list[Offload]:
        """Wait up to ``wait_s`` for the uploads; hand back (and forget) those that succeeded."""
        self._pending.wait(self._wait_s)
        return self._pending.take_confirmed()

    def check(self) -> None:
        """Raise SinkError while uploads are not handed back; failed ones are started again.

        An upload that finished after ``collect`` is kept for the next one: forgetting it here
        would lose its dead letter.
        """
        error = self._pending.resend_failed()
        if self._pending:
            failure = f"; first error: {error}" if error is not None else ""
            raise SinkError(
                f"dead-letter payload store: {len(self._pending)} dead letters not sent yet, "
                f"waiting for their payload upload (each flush waits {self._wait_s:g} s)"
                f"{failure}"
            ) from error

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _start(self, offload: Offload) -> ThreadDelivery:
        return ThreadDelivery(self._pool.submit(self._upload, offload))

    def _upload(self, offload: Offload) -> None:
        record = offload.rejection.record
        if offload.record_uri:
            self._store.put(f"{offload.base}.record.json", _record_json(record), "application/json")
        self._store.put(f"{offload.base}.bin", record.value, "application/octet-stream")
