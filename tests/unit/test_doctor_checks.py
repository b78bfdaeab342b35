"""The doctor's checks without services: settings errors as rows, the embedded backends, a
published and an unknown model, topic rows from the topics diff, the device, unreachable
services, and `rdqc doctor`'s exit codes."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from worker.cli import app
from worker.doctor.device_check import device_row
from worker.doctor.kafka_checks import group_row, kafka_rows, topic_row
from worker.doctor.path_checks import writable_row
from worker.doctor.redis_check import redis_row
from worker.doctor.report import Row, Status
from worker.doctor.run import with_timeouts_at_most
from worker.doctor.s3_checks import Bucket, buckets_in_use, s3_rows
from worker.kafka_topics import TopicSpec, TopicState
from worker.settings import Settings

pytestmark = pytest.mark.unit

runner = CliRunner()
DLQ = TopicSpec("frames.dlq", 12, 1, 336 * 3600 * 1000, 1_000_000)
DLQ_AS_WANTED = TopicState("frames.dlq", 12, 1, DLQ.retention_ms, DLQ.max_message_bytes)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RDQC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def doctor(*args: str, **env: str) -> tuple[int, list[Row]]:
    result = runner.invoke(app, ["doctor", "--json", "--timeout", "1", *args], env=env)
    assert "Traceback" not in result.output
    checks = json.loads(result.stdout)["checks"]
    return result.exit_code, [
        Row(c["check"], Status(c["status"]), c["detail"], c["fix"]) for c in checks
    ]


def by_check(rows: list[Row]) -> dict[str, Row]:
    return {row.check: row for row in rows}


def test_invalid_settings_are_a_fail_row_naming_the_variable_and_the_rest_skip() -> None:
    code, rows = doctor(RDQC_KAFKA__DLQ_MAX_RECORD_BYTES="5", RDQC_DEVICE="gpu")

    assert code == 1
    settings, *rest = rows
    assert settings.status is Status.FAIL
    assert "RDQC_KAFKA__DLQ_MAX_RECORD_BYTES: Input should be greater than or equal" in (
        settings.detail
    )
    assert "RDQC_DEVICE: Value error, device 'gpu'" in settings.detail
    assert settings.fix
    assert {row.status for row in rest} == {Status.SKIP}


def test_embedded_backends_skip_the_services_and_check_the_paths(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()

    code, rows = doctor(RDQC_DEVICE="cpu", RDQC_MODELS__CACHE_DIR=str(tmp_path / "cache"))

    checks = by_check(rows)
    assert code == 0
    assert [checks[c].status for c in ("kafka", "redis", "s3", "models")] == [Status.SKIP] * 4
    assert checks["path source"] == Row("path source", Status.OK, f"{tmp_path}/frames readable")
    assert checks["path heatmaps"].detail == f"{tmp_path}/heatmaps will be created (in {tmp_path})"
    assert checks["device"] == Row("device", Status.OK, "cpu")


def test_a_published_line_is_ok_and_an_unknown_one_fails_with_the_publish_command(
    tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    models = f"dir://{tmp_path / 'models'}"
    published = runner.invoke(
        app, ["publish", str(p1_artifacts["v2"]), "--product-line", "p1", "--models", models]
    )
    assert published.exit_code == 0, published.output

    code, rows = doctor(
        "--product-line", "p1", "--product-line", "p2", RDQC_MODELS=models, RDQC_DEVICE="cpu"
    )

    checks = by_check(rows)
    assert code == 1
    assert checks["model p1"].status is Status.OK
    assert checks["model p1"].detail.startswith("current v2 (digest ")
    assert checks["model p2"].status is Status.FAIL
    assert checks["model p2"].detail == f"no current version in {models}"
    assert checks["model p2"].fix == "rdqc publish MODEL_DIR --product-line p2"


def test_a_missing_topic_or_a_too_small_record_limit_fails_other_differences_warn() -> None:
    missing = topic_row(DLQ, None)
    small = topic_row(DLQ, replace(DLQ_AS_WANTED, max_message_bytes=65_536, partitions=4))
    fewer = topic_row(DLQ, replace(DLQ_AS_WANTED, partitions=4))
    fine = topic_row(DLQ, DLQ_AS_WANTED)

    assert missing == Row(
        "kafka topic frames.dlq", Status.FAIL, "does not exist", "rdqc topics ensure (creates it)"
    )
    assert small.status is Status.FAIL
    assert "max.message.bytes is 65536, wanted at least 1000000" in small.detail
    assert "partitions is 4, wanted at least 12" in small.detail
    assert small.fix.startswith("rdqc topics ensure --add-partitions")
    assert small.fix.endswith("; rdqc topics ensure")
    assert fewer.status is Status.WARN
    assert fine == Row(
        "kafka topic frames.dlq",
        Status.OK,
        "12 partitions, replication 1, max.message.bytes 1000000",
    )


def test_an_empty_consumer_group_fails() -> None:
    assert group_row("rdqc-workers").status is Status.OK
    assert group_row("").status is Status.FAIL
    assert "RDQC_KAFKA__GROUP_ID" in group_row("").fix


def test_unreachable_kafka_fails_and_skips_its_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("RDQC_SOURCE", "kafka://")
    monkeypatch.setenv("RDQC_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")

    rows = kafka_rows(Settings(), timeout_s=1)

    assert [(row.check, row.status) for row in rows] == [
        ("kafka", Status.FAIL),
        ("kafka topic frames.inbound", Status.SKIP),
        ("kafka topic frames.dlq", Status.SKIP),
    ]
    assert f"127.0.0.1:{port} not reachable within 1 s" in rows[0].detail
    assert "RDQC_KAFKA__BOOTSTRAP_SERVERS" in rows[0].fix


def test_unreachable_redis_fails_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_SCORES", "redis://")
    monkeypatch.setenv("RDQC_REDIS__URL", f"redis://:s3cret@127.0.0.1:{closed_port()}/0")

    row = redis_row(with_timeouts_at_most(Settings(), 1))

    assert row.status is Status.FAIL
    assert "s3cret" not in row.detail + row.fix
    assert "key prefix 'rdqc'" in row.detail


def test_unreachable_s3_fails_once_and_skips_its_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_HEATMAPS", "s3://")
    monkeypatch.setenv("RDQC_MODELS", "s3://")
    monkeypatch.setenv("RDQC_S3__ENDPOINT", f"http://127.0.0.1:{closed_port()}")

    rows = s3_rows(with_timeouts_at_most(Settings(), 1))

    assert [(row.check, row.status) for row in rows] == [
        ("s3", Status.FAIL),
        ("s3 bucket rdqc-heatmaps", Status.SKIP),
        ("s3 bucket rdqc-models", Status.SKIP),
    ]
    assert "not reachable" in rows[0].detail
    assert "RDQC_S3__ENDPOINT" in rows[0].fix


def test_buckets_in_use_come_from_the_urls_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_HEATMAPS", "s3://heat")
    monkeypatch.setenv("RDQC_MODELS", "s3://")

    assert buckets_in_use(Settings()) == [
        Bucket("heat", "heatmaps", "RDQC_HEATMAPS", created_by_worker=True),
        Bucket("rdqc-models", "models", "RDQC_MODELS", created_by_worker=False),
    ]  # the payloads go to heat/dlq, the heatmaps' bucket
    monkeypatch.setenv("RDQC_HEATMAPS", "dir://./heatmaps")
    monkeypatch.setenv("RDQC_MODELS", "dir://./models")
    assert buckets_in_use(Settings()) == []


def test_a_file_where_a_folder_is_wanted_fails(tmp_path: Path) -> None:
    (tmp_path / "heatmaps").write_text("not a folder")

    row = writable_row("heatmaps", "RDQC_HEATMAPS", tmp_path / "heatmaps")

    assert row == Row(
        "path heatmaps", Status.FAIL, f"{tmp_path}/heatmaps is not a folder", "set RDQC_HEATMAPS"
    )


def test_the_preflight_cuts_service_timeouts_to_its_own() -> None:
    bounded = with_timeouts_at_most(Settings(), 0.5)

    assert (bounded.s3.connect_timeout_s, bounded.s3.read_timeout_s) == (0.5, 0.5)
    assert (bounded.redis.connect_timeout_s, bounded.redis.socket_timeout_s) == (0.5, 0.5)
    assert with_timeouts_at_most(Settings(), 60).s3.read_timeout_s == 10


def gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")


def test_a_requested_gpu_must_be_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, 1)
    assert device_row("cuda") == Row("device", Status.OK, "cuda: GPU 0")
    assert device_row("cuda:1").status is Status.FAIL
    assert "RDQC_DEVICE=cuda:1, but 1 GPUs are visible" in device_row("cuda:1").detail
    gpus(monkeypatch, 0)
    missing = device_row("cuda:0")
    assert missing.status is Status.FAIL
    assert "nvidia.com/gpu" in missing.fix


def test_auto_says_which_device_it_would_use(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, 2)
    assert device_row("auto") == Row("device", Status.OK, "auto: would use cuda:0 (GPU 0)")
    gpus(monkeypatch, 0)
    assert device_row("auto").status is Status.WARN
    assert "would run on the CPU" in device_row("auto").detail
