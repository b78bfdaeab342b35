"""Heartbeats in Redis, beside the scores (docs/contracts.md §2).

``{prefix}:worker:{worker_id}`` is a string holding the record's JSON, set with PX = the ttl, so
a killed worker's record expires on its own. ``{prefix}:workers`` is a sorted set indexing them:
member = worker id, score = when that worker's key expires (Redis server time, ms). A reader
lists the index and fetches the keys (one round trip each), instead of a SCAN that would walk
every frame hash under the prefix. Each write also drops index members whose key has expired,
and gives the index the expiry of its longest-living member, so the index outlives no worker.
Scores come from the server's clock, so workers' clock skew cannot prune a live worker.
"""

from __future__ import annotations

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.heartbeat.errors import HeartbeatError
from worker.heartbeat.record import Heartbeat

log = structlog.get_logger(__name__)

# KEYS: the worker's key, the index. ARGV: record JSON, ttl in ms, worker id.
_WRITE = """
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
"""


class RedisHeartbeatStore:
    def __init__(
        self,
        url: str,
        prefix: str = "rdqc",
        *,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self._prefix = prefix
        self._index = f"{prefix}:workers"
        # One attempt per call: the next interval is the retry.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._write = self._client.register_script(_WRITE)

    def key(self, worker_id: str) -> str:
        return f"{self._prefix}:worker:{worker_id}"

    def write(self, heartbeat: Heartbeat) -> None:
        ttl_ms = max(1, round(heartbeat.ttl_s * 1000))
        try:
            self._write(
                keys=[self.key(heartbeat.worker_id), self._index],
                args=[heartbeat.to_json(), ttl_ms, heartbeat.worker_id],
            )
        except redis.RedisError as exc:
            # The URL may carry a password, so only the error (host and port) is shown.
            raise HeartbeatError(f"Redis heartbeat store: write failed: {exc}") from exc

    def remove(self, worker_id: str) -> None:
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key(worker_id))
                pipe.zrem(self._index, worker_id)
                pipe.execute()
        except redis.RedisError as exc:
            raise HeartbeatError(f"Redis heartbeat store: removal failed: {exc}") from exc

    def live(self) -> list[Heartbeat]:
        """Workers whose key has not expired; an unreadable record is logged and skipped."""
        try:
            worker_ids = [member.decode() for member in self._client.zrange(self._index, 0, -1)]
            values = self._client.mget([self.key(w) for w in worker_ids]) if worker_ids else []
        except redis.RedisError as exc:
            raise HeartbeatError(f"Redis heartbeat store: listing failed: {exc}") from exc
        heartbeats = []
        for worker_id, value in zip(worker_ids, values, strict=True):
            if value is None:
                continue  # expired or removed since the index was read
            try:
                heartbeats.append(Heartbeat.from_json(value, self.key(worker_id)))
            except HeartbeatError as exc:
                log.warning("heartbeat skipped", error=str(exc))
        return heartbeats

    def close(self) -> None:
        self._client.close()
