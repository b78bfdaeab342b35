"""Shadow-test entries in the Redis stream ``{prefix}:shadow:{product_line}`` (contracts §2).

Appended with ``XADD ... MAXLEN ~`` like the scores stream, one pipelined round trip per write
and one attempt: the shadow test is best effort, so a write that fails is lost, counted by the
caller, and never holds up anything. Entries are appended as they come; a frame Kafka delivers
again may appear twice, and readers keep its first entry (``read_shadow_stream`` does not, the
comparison does: worker/cli/shadow_summary.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import SinkError
from worker.sinks.shadow_entry import ShadowEntry, ShadowEntryError, StoredEntries

# Entries fetched per XRANGE call when reading the stream back.
_READ_CHUNK = 5000


def shadow_stream_key(prefix: str, product_line: str) -> str:
    return f"{prefix}:shadow:{product_line}"


class RedisShadowSink:
    def __init__(
        self,
        url: str,
        prefix: str = "rdqc",
        *,
        stream_maxlen: int = 100_000,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        if stream_maxlen <= 0:
            raise ValueError(f"stream_maxlen must be positive, got {stream_maxlen}")
        self._prefix = prefix
        self._stream_maxlen = stream_maxlen
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def setup(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise SinkError(f"Redis shadow sink: PING failed: {exc}") from exc

    def write(self, entries: Sequence[ShadowEntry]) -> None:
        if not entries:
            return
        pipe = self._client.pipeline(transaction=False)
        for entry in entries:
            key = shadow_stream_key(self._prefix, entry.meta.product_line)
            pipe.xadd(key, entry.fields(), maxlen=self._stream_maxlen, approximate=True)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise SinkError(
                f"Redis shadow sink: {len(entries)} entries not written: {exc}"
            ) from exc

    def close(self) -> None:
        self._client.close()


def read_shadow_stream(
    client: redis.Redis[bytes] | redis.Redis[str], prefix: str, product_line: str
) -> StoredEntries:
    """Every entry of the product line's shadow stream, oldest first.

    Raises SinkError when Redis cannot be read; entries that are no shadow entry are skipped.
    """
    key = shadow_stream_key(prefix, product_line)
    entries: list[ShadowEntry] = []
    skipped = 0
    start = "-"
    while True:
        try:
            chunk = client.xrange(key, min=start, max="+", count=_READ_CHUNK)
        except redis.RedisError as exc:
            raise SinkError(f"cannot read the shadow stream {key}: {exc}") from exc
        for entry_id, raw in chunk:
            fields = {_text(name): _text(value) for name, value in raw.items()}
            try:
                entries.append(ShadowEntry.parse(fields, f"{key} entry {_text(entry_id)}"))
            except ShadowEntryError:
                skipped += 1
        if len(chunk) < _READ_CHUNK:
            return StoredEntries(entries, skipped)
        start = f"({_text(chunk[-1][0])}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
