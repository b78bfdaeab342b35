"""The doctor's table, summary, JSON and exit code."""

from __future__ import annotations

import json

import pytest

from worker.doctor.report import Row, Status, exit_code, summary, table, to_json

pytestmark = pytest.mark.unit

ROWS = [
    Row("settings", Status.OK, "valid"),
    Row("kafka topic frames.dlq", Status.FAIL, "max.message.bytes too small", "rdqc topics ensure"),
    Row("device", Status.WARN, "no GPU visible", "run on a GPU node"),
    Row("redis", Status.SKIP, "not in use", "never shown for a skipped check"),
]


def test_the_table_aligns_columns_and_puts_each_fix_under_its_row() -> None:
    assert table(ROWS).splitlines() == [
        "CHECK                   STATUS  DETAIL",
        "settings                OK      valid",
        "kafka topic frames.dlq  FAIL    max.message.bytes too small",
        "                                fix: rdqc topics ensure",
        "device                  WARN    no GPU visible",
        "                                fix: run on a GPU node",
        "redis                   SKIP    not in use",
    ]


def test_any_failure_exits_1_and_warnings_or_skips_do_not() -> None:
    assert exit_code(ROWS) == 1
    assert exit_code([r for r in ROWS if r.status is not Status.FAIL]) == 0


def test_the_summary_counts_each_status() -> None:
    assert summary(ROWS) == "doctor failed: 1 OK, 1 WARN, 1 FAIL, 1 SKIP"
    assert summary(ROWS[:1]) == "doctor passed: 1 OK"


def test_json_has_every_row_and_the_verdict() -> None:
    data = json.loads(to_json(ROWS))

    assert data["ok"] is False
    assert data["checks"][1] == {
        "check": "kafka topic frames.dlq",
        "status": "FAIL",
        "detail": "max.message.bytes too small",
        "fix": "rdqc topics ensure",
    }
    assert [c["status"] for c in data["checks"]] == ["OK", "FAIL", "WARN", "SKIP"]
