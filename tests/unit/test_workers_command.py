"""`rdqc workers`: the table, the empty answer and a store that cannot be read."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_heartbeat_files import NOW_MS, heartbeat
from typer.testing import CliRunner

from worker.cli import app
from worker.cli.workers import table
from worker.heartbeat import LineModels, ModelVersion

pytestmark = pytest.mark.unit


def test_the_table_has_a_row_per_worker_and_product_line_with_short_digests() -> None:
    live, shadow = (
        ModelVersion(version="v1", digest="a" * 64),
        ModelVersion(version="v2", digest="b" * 64),
    )
    busy = heartbeat(
        "w-long-name",
        last_seen_ms=NOW_MS - 3_000,
        frames_scored=1200,
        models={
            "lids": LineModels(live=live),
            "caps": LineModels(live=live, shadow=shadow),
        },
    )
    idle = heartbeat("w-2", models={})

    lines = table([busy, idle], now_ms=NOW_MS).splitlines()

    assert lines == [
        "WORKER       HOST    LAST SEEN  SCORED  DEAD-LETTERED  MODELS",
        "w-long-name  host-1  3 s ago    1200    1              "
        f"caps v1 ({'a' * 12}), shadow v2 ({'b' * 12})",
        f"                                                       lids v1 ({'a' * 12})",
        "w-2          host-1  0 s ago    10      1              -",
    ]


def test_no_live_worker_is_said_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["workers", "--scores", f"file://{tmp_path / 's.jsonl'}"])

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no live workers\n"


def test_an_unreachable_redis_is_one_line_without_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = CliRunner().invoke(app, ["workers", "--scores", f"redis://:s3cret@127.0.0.1:{port}/0"])

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: Redis heartbeat store: listing failed:")
    assert "s3cret" not in line
