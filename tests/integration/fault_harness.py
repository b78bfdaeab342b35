"""Real faults for the fault suite: worker processes to kill -9, stack services to SIGSTOP,
a camera publishing at a steady rate, and what the stream holds afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from kafka import KafkaProducer
from stack_endpoints import env_file_path

from worker.cli.camera_sim import EncodedFrame

# The word each service's command line contains (deploy/local/stack.sh), so a recycled pid is
# never mistaken for the service.
_SERVICE_MARKERS = {"kafka": "kafka.Kafka", "redis": "redis-server", "minio": "minio"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_pid(service: str) -> int:
    """The pid of a service of the running local stack, from stack.sh's pid file."""
    pid = int((env_file_path().parent / "run" / f"{service}.pid").read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if _SERVICE_MARKERS[service] not in cmdline:
        raise RuntimeError(f"pid {pid} of {service} is not the stack's {service}: {cmdline!r}")
    return pid


@contextmanager
def frozen(service: str) -> Iterator[None]:
    """The service is stopped (SIGSTOP) inside the block: connections hang, nothing answers."""
    pid = service_pid(service)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


class WorkerProcess:
    """`rdqc worker` as a child process with its own metrics and probe ports and a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.metrics_port, self.health_port = free_port(), free_port()
        self._env = {
            **os.environ,
            **env,
            "RDQC_METRICS_PORT": str(self.metrics_port),
            "RDQC_HEALTH_PORT": str(self.health_port),
            "RDQC_WORKER_ID": name,
        }
        self._log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        console_script = Path(sys.executable).with_name("rdqc")
        command = (
            [str(console_script), "worker"]
            if console_script.exists()
            else [sys.executable, "-c", "from worker.cli import main; main()", "worker"]
        )
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(command, env=self._env, stdout=log, stderr=log)
        self.starts += 1

    def check_alive(self) -> None:
        """Record an exit nobody asked for (the suite asserts there is none)."""
        if self._process is not None and (code := self._process.poll()) is not None:
            self.unexpected_exits.append(code)
            self._process = None

    def metrics(self) -> list[str]:
        """The worker's own rdqc_* samples (empty when it does not answer)."""
        try:
            _, text = _http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.startswith("rdqc_")]

    def in_flight(self) -> float:
        """The worker's own count of frames polled and not yet committed (0 if unreachable)."""
        for line in self.metrics():
            if line.startswith("rdqc_frames_in_flight "):
                return float(line.split()[1])
        return 0.0

    def kill_mid_batch(self, within_s: float = 3.0) -> bool:
        """kill -9 once the worker has frames in flight (or after ``within_s``); True if it had."""
        self.check_alive()
        deadline = time.monotonic() + within_s
        busy = False
        while time.monotonic() < deadline and not (busy := self.in_flight() > 0):
            time.sleep(0.02)
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
            self.kills += 1
        return busy

    def probes(self) -> dict[str, int]:
        """HTTP status of /healthz and /readyz (0 when the worker does not answer)."""
        statuses = {}
        for probe in ("healthz", "readyz"):
            try:
                statuses[probe], _ = _http_get(f"http://127.0.0.1:{self.health_port}/{probe}")
            except OSError:
                statuses[probe] = 0
        return statuses

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait for the drain; the exit code (None if it was not running)."""
        self.check_alive()
        if self._process is None:
            return None
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            return -9

    def log_tail(self, lines: int = 40) -> str:
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class SentFrame:
    product_line: str
    camera_id: str
    frame_id: str
    captured_at_ms: int


@dataclass
class Camera:
    """Several cameras over several product lines, publishing round-robin at a fixed rate."""

    bootstrap_servers: str
    topic: str
    streams: list[tuple[str, str]]  # (product_line, camera_id)
    frames: list[EncodedFrame]
    rate_per_s: float
    sent: list[SentFrame] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> threading.Thread:
        thread = threading.Thread(target=self._publish, name="camera", daemon=True)
        thread.start()
        return thread

    def _publish(self) -> None:
        # Generous timeouts: the broker is frozen for a while during the run, and the camera
        # must keep its frames (like a real camera's buffer), not drop them.
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            linger_ms=5,
            delivery_timeout_ms=180_000,
            request_timeout_ms=30_000,
            max_block_ms=120_000,
        )
        try:
            start = time.monotonic()
            for index, frame in enumerate(self.frames):
                delay = start + index / self.rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                line, camera = self.streams[index % len(self.streams)]
                sent = SentFrame(line, camera, f"{camera}-{frame.name}", time.time_ns() // 10**6)
                headers = [
                    ("product_line", line.encode()),
                    ("camera_id", camera.encode()),
                    ("frame_id", sent.frame_id.encode()),
                    ("captured_at", str(sent.captured_at_ms).encode()),
                    ("content_type", frame.content_type.encode()),
                ]
                producer.send(self.topic, key=camera.encode(), value=frame.payload, headers=headers)
                self.sent.append(sent)
            producer.flush(timeout=180)
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            producer.close(timeout=30)


@dataclass(frozen=True)
class StreamEntry:
    product_line: str
    camera_id: str
    frame_id: str
    is_anomaly: bool
    heatmap_uri: str
    captured_at_ms: int
    scored_at_ms: int


def stream_entries(client: redis.Redis[bytes], prefix: str, lines: list[str]) -> list[StreamEntry]:
    entries = []
    for line in lines:
        for _, raw in client.xrange(f"{prefix}:scores:{line}"):
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            entries.append(
                StreamEntry(
                    product_line=fields["product_line"],
                    camera_id=fields["camera_id"],
                    frame_id=fields["frame_id"],
                    is_anomaly=fields["is_anomaly"] == "1",
                    heatmap_uri=fields["heatmap_uri"],
                    captured_at_ms=int(fields["captured_at"]),
                    scored_at_ms=int(fields["scored_at"]),
                )
            )
    return entries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def write_report(report: dict[str, object], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
