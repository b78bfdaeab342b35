"""Where the local service stack (`make stack-up`) listens, and a quick reachability probe.

`bash deploy/local/stack.sh up` writes `.stack/stack.env` with the same `RDQC_*` variables the
product's settings read; this module turns that file into a `StackEndpoints`. Integration tests
get one through the `stack` fixture (see conftest.py) and can import the type from here:

    from stack_endpoints import StackEndpoints
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
import urllib3
from kafka import KafkaAdminClient
from minio import Minio
from redis.backoff import NoBackoff
from redis.retry import Retry

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENV_FILE = REPO_ROOT / ".stack" / "stack.env"
ENV_FILE_OVERRIDE = "RDQC_STACK_ENV"

_KEYS = {
    "kafka_bootstrap": "RDQC_KAFKA__BOOTSTRAP_SERVERS",
    "redis_url": "RDQC_REDIS__URL",
    "s3_endpoint": "RDQC_S3__ENDPOINT",
    "s3_access_key": "RDQC_S3__ACCESS_KEY",
    "s3_secret_key": "RDQC_S3__SECRET_KEY",
}


class StackEnvError(Exception):
    """The stack env file is missing or incomplete."""


@dataclass(frozen=True, slots=True)
class StackEndpoints:
    """Connection settings of the running local stack."""

    kafka_bootstrap: str  # "127.0.0.1:19092"
    redis_url: str  # "redis://127.0.0.1:16379/0"
    s3_endpoint: str  # "http://127.0.0.1:19000"
    s3_access_key: str
    s3_secret_key: str

    @property
    def s3_host(self) -> str:
        """`host:port` of the S3 endpoint, as `minio.Minio` wants it."""
        return urlsplit(self.s3_endpoint).netloc

    @property
    def s3_secure(self) -> bool:
        return urlsplit(self.s3_endpoint).scheme == "https"

    def as_env(self) -> dict[str, str]:
        """The `RDQC_*` variables, e.g. to start the product as a subprocess against the stack."""
        return {env: getattr(self, field) for field, env in _KEYS.items()}

    @classmethod
    def from_env_file(cls, path: Path) -> StackEndpoints:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StackEnvError(f"{path} does not exist") from None
        values = parse_dotenv(text)
        missing = [env for env in _KEYS.values() if not values.get(env)]
        if missing:
            raise StackEnvError(f"{path} lacks {', '.join(missing)}")
        return cls(**{field: values[env] for field, env in _KEYS.items()})


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse the simple `KEY=value` dotenv files that stack.sh writes."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_file_path() -> Path:
    override = os.environ.get(ENV_FILE_OVERRIDE)
    return Path(override) if override else DEFAULT_ENV_FILE


def make_minio(endpoints: StackEndpoints, timeout_s: float = 30.0, retries: int = 3) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
        retries=urllib3.Retry(total=retries, backoff_factor=0.2),
    )
    return Minio(
        endpoints.s3_host,
        access_key=endpoints.s3_access_key,
        secret_key=endpoints.s3_secret_key,
        secure=endpoints.s3_secure,
        http_client=http,
    )


def probe(endpoints: StackEndpoints, timeout_s: float = 5.0) -> list[str]:
    """Try each service once; return one line per service that does not answer (empty: all ok)."""
    problems: list[str] = []
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=endpoints.kafka_bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
        admin.close()
    except Exception as exc:
        problems.append(f"kafka at {endpoints.kafka_bootstrap}: {type(exc).__name__}: {exc}")

    client = redis.Redis.from_url(
        endpoints.redis_url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except Exception as exc:
        problems.append(f"redis at {endpoints.redis_url}: {type(exc).__name__}: {exc}")
    finally:
        client.close()

    try:
        make_minio(endpoints, timeout_s=timeout_s, retries=0).list_buckets()
    except Exception as exc:
        problems.append(f"minio at {endpoints.s3_endpoint}: {type(exc).__name__}: {exc}")
    return problems
