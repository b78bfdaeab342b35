"""Scores to Redis, in the schema the ops dashboard reads (docs/contracts.md §2, v2).

Each frame is written by one Lua script, so its keys change together, and all frames of a flush
go in one pipelined round trip. The frame hash, keyed by product line, camera and frame id, is
the idempotency record, and the first write wins: when it exists the frame was written before
(Kafka redelivered it, perhaps rescored by a newer model), and the script changes no hash field,
stream entry, ``latest`` value, flagged member or event, so they all keep showing the first
result. That also makes a retried flush safe: frames that reached Redis before the connection
broke are not written twice.

A redelivery refreshes the hash's expiry: the hash is what keeps the next redelivery out, so
idempotence lasts ``ttl_s`` after the frame was last seen, and only a frame that Kafka has not
delivered for ``ttl_s`` can be appended again. All keys of a frame are touched by one script,
which needs a single Redis (or keys in one cluster slot), not a Redis Cluster.
"""

from __future__ import annotations

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import SinkError
from worker.frames import FrameResult
from worker.sinks.retry import transient_retry
from worker.sinks.score_json import result_json

log = structlog.get_logger(__name__)

# KEYS: frame hash, stream, latest hash, flagged zset.
# ARGV: ttl_s, stream_maxlen, flagged_maxlen, event channel, camera_id, captured_at, is_anomaly,
#       frame_id, flagged member, result JSON, then the hash/stream fields as name, value pairs.
# Returns 1 when the frame was new, 0 for a redelivery.
_WRITE_FRAME = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return 0
end
local fields = {}
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])

-- The newest frame by captured_at wins; at a tie the one shown stays, unless it is this very
-- frame written again after its hash expired, so latest matches the hash just written.
local captured_at = tonumber(ARGV[6])
local replace = true
local stored = redis.call('HGET', KEYS[3], ARGV[5])
if stored then
  local ok, previous = pcall(cjson.decode, stored)
  if ok and type(previous) == 'table' and tonumber(previous.captured_at) then
    local previous_at = tonumber(previous.captured_at)
    replace = captured_at > previous_at
      or (captured_at == previous_at and previous.frame_id == ARGV[8])
  end
end
if replace then redis.call('HSET', KEYS[3], ARGV[5], ARGV[10]) end

redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[4], captured_at, ARGV[9])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[3]) + 1))
end
redis.call('PUBLISH', ARGV[4], ARGV[10])
return 1
"""

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)


class RedisScoreSink:
    def __init__(
        self,
        url: str,
        prefix: str = "rdqc",
        *,
        ttl_s: int = 7 * 24 * 3600,
        stream_maxlen: int = 100_000,
        flagged_maxlen: int = 10_000,
        attempts: int = 3,
        socket_timeout_s: float = 5.0,
        connect_timeout_s: float | None = None,
    ) -> None:
        if ttl_s <= 0 or stream_maxlen <= 0 or flagged_maxlen <= 0 or attempts <= 0:
            raise ValueError(
                "ttl_s, stream_maxlen, flagged_maxlen and attempts must be positive, got "
                f"{ttl_s}, {stream_maxlen}, {flagged_maxlen}, {attempts}"
            )
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._stream_maxlen = stream_maxlen
        self._flagged_maxlen = flagged_maxlen
        self._attempts = attempts
        # transient_retry is the one retry policy here, so redis-py's own retries are turned off.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s or socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._write_frame = self._client.register_script(_WRITE_FRAME)
        self._pending: list[FrameResult] = []

    def setup(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            # The URL may carry a password, so only the error (host and port) is shown.
            raise SinkError(f"Redis score sink: PING failed: {exc}") from exc

    def add(self, result: FrameResult) -> None:
        self._pending.append(result)

    def flush(self) -> None:
        if not self._pending:
            return
        try:
            written = transient_retry(self._attempts, _TRANSIENT)(self._write_all, self._pending)
        except _TRANSIENT as exc:
            # Transient errors are retried, so one that gets here failed every attempt.
            raise SinkError(
                f"Redis score sink: {len(self._pending)} results not written after "
                f"{self._attempts} attempts: {exc}"
            ) from exc
        except redis.RedisError as exc:
            raise SinkError(
                f"Redis score sink: {len(self._pending)} results not written: {exc}"
            ) from exc
        redelivered = len(self._pending) - written
        if redelivered:
            log.info("redis_scores_redelivered", frames=redelivered)
        self._pending = []

    def close(self) -> None:
        self._client.close()

    def _write_all(self, results: list[FrameResult]) -> int:
        """Run the script for every result in one round trip; returns how many were new."""
        pipe = self._client.pipeline(transaction=False)
        for result in results:
            self._write_frame(keys=self._keys(result), args=self._args(result), client=pipe)
        return sum(int(new) for new in pipe.execute())

    def _keys(self, result: FrameResult) -> list[str]:
        line = result.meta.product_line
        return [
            f"{self._prefix}:frame:{line}:{frame_in_line(result)}",
            f"{self._prefix}:scores:{line}",
            f"{self._prefix}:latest:{line}",
            f"{self._prefix}:flagged:{line}",
        ]

    def _args(self, result: FrameResult) -> list[str | int]:
        fields = result.fields()
        pairs = [item for name_value in fields.items() for item in name_value]
        return [
            self._ttl_s,
            self._stream_maxlen,
            self._flagged_maxlen,
            f"{self._prefix}:events:{result.meta.product_line}",
            fields["camera_id"],
            fields["captured_at"],
            fields["is_anomaly"],
            fields["frame_id"],
            frame_in_line(result),
            result_json(result),
            *pairs,
        ]


def frame_in_line(result: FrameResult) -> str:
    """``{camera_id}:{frame_id}``, unique within a product line.

    It is the flagged member and the tail of the frame key. Camera ids hold no ``:``, so the first
    ``:`` splits it even when the frame id has one.
    """
    return f"{result.meta.camera_id}:{result.meta.frame_id}"
