"""Redis, where the scores (and so heartbeats and shadow results) go: it answers a PING."""

from __future__ import annotations

from worker.backend_factories import SCORE_SINKS
from worker.backend_urls import mask_url, parse_backend_url
from worker.doctor.report import Row, Status
from worker.errors import SinkError
from worker.settings import Settings

CHECK = "redis"


def redis_row(settings: Settings) -> Row:
    scheme, location = parse_backend_url(settings.scores)
    if scheme != "redis":
        return Row(CHECK, Status.SKIP, f"not in use (RDQC_SCORES is {scheme}://)")
    # As the score sink: ``redis://`` takes the redis section's URL, a full URL is used as is.
    url = settings.scores if location else settings.redis.url.get_secret_value()
    where = f"{mask_url(url)}, key prefix {settings.redis.prefix!r}"
    fix = "check RDQC_REDIS__URL (host, port, password) and that Redis is up and reachable"
    try:
        sink = SCORE_SINKS[scheme](settings, location)
    except ValueError as exc:  # a URL redis-py cannot parse
        return Row(CHECK, Status.FAIL, f"{exc} ({mask_url(url)})", fix)
    try:
        sink.setup()  # the sink's PING, with its connect and socket timeouts
    except SinkError as exc:
        return Row(CHECK, Status.FAIL, f"{exc} ({where})", fix)
    finally:
        sink.close()
    return Row(CHECK, Status.OK, f"PING answered by {where}")
