"""Scores from Redis (docs/contracts.md §2): read-only, a bounded number of round trips each.

No call walks the keyspace: the newest results come from the end of the stream (``XREVRANGE
... COUNT``), flagged frames from the sorted set and their hashes in one pipeline, and the live
tail from ``XREAD BLOCK`` on the stream. Every call tries once (no retries inside redis-py), so
an outage shows at once; the client reconnects by itself on the next call once Redis is back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.dashboard.errors import BackendUnavailable
from worker.dashboard.ports import Tail
from worker.dashboard.records import NotAScore, Score
from worker.sinks.shadow_entry import ShadowEntry, ShadowEntryError
from worker.sinks.shadow_redis import shadow_stream_key

Entries = list[tuple[bytes, dict[bytes, bytes]]]
T = TypeVar("T")
Item = TypeVar("Item")


class RedisScoreReader:
    def __init__(
        self,
        url: str,
        prefix: str = "rdqc",
        *,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        max_wait_s: float = 5.0,
    ) -> None:
        self._prefix = prefix
        self._client = self._connect(url, socket_timeout_s, connect_timeout_s)
        # Tails block in XREAD for up to max_wait_s: their socket waits that much longer.
        self._tail_client = self._connect(url, socket_timeout_s + max_wait_s, connect_timeout_s)
        self._max_wait_s = max_wait_s

    @staticmethod
    def _connect(url: str, socket_timeout_s: float, connect_timeout_s: float) -> redis.Redis[bytes]:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=10,
        )

    def product_lines(self) -> list[str]:
        return []

    def latest(self, product_line: str) -> list[Score]:
        values = self._call(lambda: self._client.hvals(self._key("latest", product_line)))
        return _parsed(values, lambda value: Score.parse(_json_object(value)))

    def recent(self, product_line: str, limit: int) -> list[Score]:
        key = self._key("scores", product_line)
        entries: Entries = self._call(lambda: self._client.xrevrange(key, count=limit))
        return _parsed(reversed(entries), lambda entry: Score.parse(entry[1]))

    def flagged(self, product_line: str, limit: int) -> list[Score]:
        key = self._key("flagged", product_line)
        members: list[bytes] = self._call(lambda: self._client.zrevrange(key, 0, limit - 1))
        if not members:
            return []
        pipe = self._client.pipeline(transaction=False)
        for member in members:
            camera_id, _, frame_id = member.decode("utf-8", "replace").partition(":")
            pipe.hgetall(self._frame_key(product_line, camera_id, frame_id))
        hashes: list[dict[bytes, bytes]] = self._call(pipe.execute)
        # A member whose hash has expired (older than the TTL) is left out.
        return _parsed((h for h in hashes if h), Score.parse)

    def frame(self, product_line: str, camera_id: str, frame_id: str) -> Score | None:
        key = self._frame_key(product_line, camera_id, frame_id)
        fields: dict[bytes, bytes] = self._call(lambda: self._client.hgetall(key))
        if not fields:
            return None
        try:
            return Score.parse(fields)
        except NotAScore:
            return None

    def tail(self, product_line: str, cursor: str | None, wait_s: float) -> Tail:
        key = self._key("scores", product_line)
        if cursor is None:
            newest: Entries = self._call(lambda: self._client.xrevrange(key, count=1))
            cursor = newest[0][0].decode() if newest else "0-0"
        block_ms = max(1, int(min(wait_s, self._max_wait_s) * 1000))
        start = cursor
        answer: list[tuple[bytes, Entries]] = self._call(
            lambda: self._tail_client.xread({key: start}, count=500, block=block_ms)
        )
        entries = answer[0][1] if answer else []
        if entries:
            cursor = entries[-1][0].decode()
        return Tail(_parsed(entries, lambda entry: Score.parse(entry[1])), cursor)

    def shadow_entries(self, product_line: str, limit: int) -> list[ShadowEntry]:
        key = shadow_stream_key(self._prefix, product_line)
        entries: Entries = self._call(lambda: self._client.xrevrange(key, count=limit))
        parsed = []
        for entry_id, raw in reversed(entries):
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            try:
                parsed.append(ShadowEntry.parse(fields, f"{key} entry {entry_id.decode()}"))
            except ShadowEntryError:
                continue
        return parsed

    def ping(self) -> None:
        self._call(self._client.ping)

    def close(self) -> None:
        self._client.close()
        self._tail_client.close()

    def _key(self, kind: str, product_line: str) -> str:
        return f"{self._prefix}:{kind}:{product_line}"

    def _frame_key(self, product_line: str, camera_id: str, frame_id: str) -> str:
        return f"{self._prefix}:frame:{product_line}:{camera_id}:{frame_id}"

    @staticmethod
    def _call(command: Callable[[], T]) -> T:
        try:
            return command()
        except redis.RedisError as exc:
            # The URL may carry a password: only the error (host and port) is shown.
            raise BackendUnavailable("scores", f"Redis unreachable: {exc}") from exc


def _json_object(value: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise NotAScore(f"latest value is no JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise NotAScore("latest value is no JSON object")
    return decoded


def _parsed(items: Iterable[Item], parse: Callable[[Item], Score]) -> list[Score]:
    """Each item parsed; records that are no score record are skipped."""
    scores = []
    for item in items:
        try:
            scores.append(parse(item))
        except NotAScore:
            continue
    return scores
