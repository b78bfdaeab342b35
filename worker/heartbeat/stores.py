"""Where heartbeats live: beside the scores, in Redis or in a folder, chosen by ``RDQC_SCORES``.

``live_workers`` is the reader's whole API (``rdqc workers``, ``rdqc models list``, tests).
Backend modules are imported when chosen, so the embedded mode never loads the Redis client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from worker.backend_urls import parse_backend_url
from worker.heartbeat.record import Heartbeat

if TYPE_CHECKING:
    from worker.settings import Settings


class HeartbeatStore(Protocol):
    def write(self, heartbeat: Heartbeat) -> None:
        """Store the record, replacing this worker's last one. Raises HeartbeatError."""

    def remove(self, worker_id: str) -> None:
        """Delete the worker's record (clean exit). Raises HeartbeatError."""

    def live(self) -> list[Heartbeat]:
        """The records not expired, in no particular order. Raises HeartbeatError."""

    def close(self) -> None: ...


def _redis_store(settings: Settings, location: str) -> HeartbeatStore:
    from worker.heartbeat.redis_store import RedisHeartbeatStore

    redis = settings.redis
    # As the score sink: ``redis://`` takes the redis section's URL, a full URL is used as is.
    url = settings.scores if location else redis.url.get_secret_value()
    return RedisHeartbeatStore(
        url,
        redis.prefix,
        socket_timeout_s=redis.socket_timeout_s,
        connect_timeout_s=redis.connect_timeout_s,
    )


def _file_store(_settings: Settings, location: str) -> HeartbeatStore:
    from worker.heartbeat.file_store import FileHeartbeatStore, heartbeat_folder

    return FileHeartbeatStore(heartbeat_folder(location))


# Keyed by the scheme of RDQC_SCORES: one store per score sink.
HEARTBEAT_STORES: Mapping[str, Callable[[Settings, str], HeartbeatStore]] = {
    "redis": _redis_store,
    "file": _file_store,
}


def heartbeat_store(settings: Settings) -> HeartbeatStore:
    scheme, location = parse_backend_url(settings.scores)
    return HEARTBEAT_STORES[scheme](settings, location)


def live_workers(settings: Settings) -> list[Heartbeat]:
    """The workers alive now, by worker id; group them with ``workers_by_version``."""
    store = heartbeat_store(settings)
    try:
        return sorted(store.live(), key=lambda heartbeat: heartbeat.worker_id)
    finally:
        store.close()
