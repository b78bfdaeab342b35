"""Readiness checks for the local stack, used by deploy/local/stack.sh.

Usage: check.py --wait SECONDS SERVICE=PID:PORT [SERVICE=PID:PORT ...]

SERVICE is one of kafka, redis, minio. For each one, retry until the service really answers or
the deadline passes:

- kafka: produce a record to the `_rdqc_health` topic and consume it back (manually assigned
  partition), then commit an offset for a consumer group, so the group coordinator is ready too;
- redis: PING;
- minio: list_buckets with the credentials in MINIO_ROOT_USER / MINIO_ROOT_PASSWORD.

If the client libraries are not importable (the .venv is not installed yet), fall back to a plain
TCP connect on the port. When a PID is given (not 0) and that process exits, stop waiting at once.

Prints one line per service, `ok SERVICE <how>` or `fail SERVICE <reason>`, and exits with the
number of failed services.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable

HOST = "127.0.0.1"
HEALTH_TOPIC = "_rdqc_health"
HEALTH_GROUP = "_rdqc_health"


class ProcessGoneError(Exception):
    """The service's process exited while we were waiting for it."""


def tcp_check(port: int) -> str:
    with socket.create_connection((HOST, port), timeout=1.0):
        return "tcp connect (client library not installed)"


def kafka_check(port: int, budget: float) -> str:
    try:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    except ImportError:
        return tcp_check(port)

    bootstrap = f"{HOST}:{port}"
    timeout_ms = max(1000, int(budget * 1000))
    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_block_ms=timeout_ms,
        request_timeout_ms=max(timeout_ms, 5000),
        reconnect_backoff_max_ms=500,
    )
    try:
        meta = producer.send(HEALTH_TOPIC, key=b"health", value=token).get(timeout=budget)
    finally:
        producer.close(timeout=2)

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=HEALTH_GROUP,
        enable_auto_commit=False,
        request_timeout_ms=max(timeout_ms, 5000),
        reconnect_backoff_max_ms=500,
    )
    try:
        tp = TopicPartition(HEALTH_TOPIC, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if any(r.value == token for records in batch.values() for r in records):
                # Committing needs the group coordinator (and creates __consumer_offsets on a
                # fresh cluster), so consumer groups in tests work straight away.
                consumer.commit()
                return f"produce+consume on {HEALTH_TOPIC} (partition {meta.partition})"
        raise TimeoutError("produced record was not consumed back")
    finally:
        consumer.close(autocommit=False)


def redis_check(port: int, budget: float) -> str:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        return tcp_check(port)
    # No client-side retries: the loop in wait_for retries, within the deadline.
    client = redis.Redis(
        host=HOST, port=port, socket_timeout=max(1.0, budget), retry=Retry(NoBackoff(), 0)
    )
    try:
        if not client.ping():
            raise RuntimeError("PING did not answer PONG")
        return "PING"
    finally:
        client.close()


def minio_check(port: int, budget: float) -> str:
    try:
        import urllib3
        from minio import Minio
    except ImportError:
        return tcp_check(port)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=1.0, read=max(1.0, budget)),
        retries=urllib3.Retry(total=0),
    )
    client = Minio(
        f"{HOST}:{port}",
        access_key=os.environ["MINIO_ROOT_USER"],
        secret_key=os.environ["MINIO_ROOT_PASSWORD"],
        secure=False,
        http_client=http,
    )
    client.list_buckets()
    return "list_buckets"


CHECKS: dict[str, Callable[[int, float], str]] = {
    "kafka": kafka_check,
    "redis": redis_check,
    "minio": minio_check,
}


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:  # noqa: PTH123
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _detail(last_error: str) -> str:
    return f" (last error: {last_error})" if last_error else ""


def wait_for(service: str, pid: int, port: int, deadline: float) -> str:
    check = CHECKS[service]
    last_error = ""
    while True:
        if not process_alive(pid):
            raise ProcessGoneError(f"process {pid} exited{_detail(last_error)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"not ready in time{_detail(last_error)}")
        try:
            # Cheap probe first: the clients back off exponentially on refused connections,
            # which would add seconds after the port opens.
            tcp_check(port)
        except OSError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
            continue
        try:
            return check(port, min(10.0, max(1.0, remaining)))
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}".strip()
        time.sleep(0.25)


def parse_target(text: str) -> tuple[str, int, int]:
    service, _, rest = text.partition("=")
    pid, _, port = rest.partition(":")
    if service not in CHECKS or not pid or not port:
        raise argparse.ArgumentTypeError(f"expected SERVICE=PID:PORT, got {text!r}")
    return service, int(pid), int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=30.0, help="seconds per service")
    parser.add_argument("targets", nargs="+", type=parse_target)
    args = parser.parse_args()
    # The clients log every refused connection while the service is still starting.
    logging.disable(logging.CRITICAL)

    failures = 0
    for service, pid, port in args.targets:
        started = time.monotonic()
        try:
            how = wait_for(service, pid, port, started + args.wait)
        except (ProcessGoneError, TimeoutError) as exc:
            failures += 1
            print(f"fail {service} {exc}", flush=True)
        else:
            print(f"ok {service} {how} in {time.monotonic() - started:.1f}s", flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
