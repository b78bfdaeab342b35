"""The shadow stream in a real Redis (docs/contracts.md §2): written best effort, read back by
``rdqc models compare``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from stack_endpoints import StackEndpoints
from typer.testing import CliRunner

from worker.cli import app
from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.sinks import shadow_redis
from worker.sinks.shadow_entry import ShadowEntry
from worker.sinks.shadow_redis import RedisShadowSink, read_shadow_stream

pytestmark = pytest.mark.integration


def entry(index: int, line: str = "caps", *, flip: bool = False) -> ShadowEntry:
    current = 0.3 + index % 5 * 0.01
    return ShadowEntry(
        meta=FrameMeta(f"frame-{index:04d}", line, f"cam-{index % 2}", 1_795_000_000_000 + index),
        scored_at_ms=1_795_000_000_100 + index,
        candidate_version="v2",
        candidate_digest="ab" * 32,
        score=0.7 if flip else current + 0.02,
        raw_score=0.41,
        threshold=0.38,
        is_anomaly=flip,
        model_version="v1",
        current_score=current,
        current_raw_score=0.2,
        current_is_anomaly=False,
        worker_id="w-1",
    )


@pytest.fixture
def sink(stack: StackEndpoints, redis_prefix: str) -> Iterator[RedisShadowSink]:
    sink = RedisShadowSink(stack.redis_url, redis_prefix, stream_maxlen=100)
    sink.setup()
    yield sink
    sink.close()


def stream(client: redis.Redis, key: str) -> list[dict[str, str]]:
    return [
        {name.decode(): value.decode() for name, value in fields.items()}
        for _, fields in client.xrange(key)
    ]


def test_each_entry_lands_in_its_lines_stream_with_the_contract_fields(
    sink: RedisShadowSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    entries = [entry(0), entry(1, "bolts"), entry(2, flip=True)]
    sink.write(entries)

    caps = stream(redis_client, f"{redis_prefix}:shadow:caps")
    assert caps == [entries[0].fields(), entries[2].fields()]
    assert caps[1] == {
        "frame_id": "frame-0002",
        "product_line": "caps",
        "camera_id": "cam-0",
        "captured_at": "1795000000002",
        "scored_at": "1795000000102",
        "candidate_version": "v2",
        "candidate_digest": "ab" * 32,
        "score": "0.700000",
        "raw_score": "0.410000",
        "threshold": "0.380000",
        "is_anomaly": "1",
        "model_version": "v1",
        "current_score": "0.320000",
        "current_raw_score": "0.200000",
        "current_is_anomaly": "0",
        "worker_id": "w-1",
    }
    assert stream(redis_client, f"{redis_prefix}:shadow:bolts") == [entries[1].fields()]


def test_the_stream_is_capped_like_the_scores_stream(
    sink: RedisShadowSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    for start in range(0, 1000, 50):
        sink.write([entry(i) for i in range(start, start + 50)])
    length = redis_client.xlen(f"{redis_prefix}:shadow:caps")
    assert 100 <= length < 1000  # MAXLEN ~ 100 trims whole nodes, so about 100


def test_models_compare_reads_the_stream(
    sink: RedisShadowSink,
    stack: StackEndpoints,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink.write([entry(i, flip=i in (3, 7)) for i in range(20)])
    sink.write([entry(3)])  # frame 3 delivered again: its first entry counts
    monkeypatch.setattr(shadow_redis, "_READ_CHUNK", 7)  # read in several round trips
    for name, value in {
        "RDQC_ENV_FILE": str(tmp_path / "absent.env"),
        "RDQC_SCORES": "redis://",
        "RDQC_REDIS__URL": stack.redis_url,
        "RDQC_REDIS__PREFIX": redis_prefix,
    }.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(app, ["models", "compare", "caps", "--json", "--limit", "3"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames"] == 20 and report["repeated_entries"] == 1
    assert report["confusion"]["only_candidate"] == 2 and report["confusion"]["neither"] == 18
    flips = report["disagreements"][:2]
    assert {d["frame_id"] for d in flips} == {"frame-0003", "frame-0007"}
    assert all(d["flip"] for d in flips) and not report["disagreements"][2]["flip"]


def test_an_unreachable_redis_fails_the_write_within_its_timeouts(
    redis_prefix: str, redis_client: redis.Redis
) -> None:
    sink = RedisShadowSink("redis://127.0.0.1:1/0", redis_prefix, connect_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(SinkError, match="1 entries not written"):
        sink.write([entry(0)])
    assert time.monotonic() - started < 3
    stored = read_shadow_stream(redis_client, redis_prefix, "caps")
    assert stored.entries == [] and stored.skipped == 0
