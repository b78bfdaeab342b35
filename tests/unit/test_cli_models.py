"""`rdqc publish` and `rdqc models` on a dir:// model store: list, show, promote, rollback,
shadow, history, and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from worker.cli import app
from worker.heartbeat.file_store import FileHeartbeatStore
from worker.heartbeat.record import Heartbeat, LineModels, ModelVersion

runner = CliRunner()


@pytest.fixture
def rdqc(tmp_path: Path) -> Any:
    """Runs `rdqc ARGS` on this test's dir:// store, with no settings from the environment."""
    env = {
        "RDQC_ENV_FILE": str(tmp_path / "absent.env"),
        "RDQC_MODELS": "dir:///nonexistent",
        "RDQC_SCORES": f"file://{tmp_path / 'scores.jsonl'}",  # heartbeats in workers/ beside it
    }
    store = ["--models", f"dir://{tmp_path / 'models'}"]

    def run(*args: str) -> Result:
        return runner.invoke(app, [*args, *store], env=env)

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_publish_list_show_promote_rollback_shadow_and_history(
    rdqc: Any, p1_artifacts: dict[str, Path]
) -> None:
    first = ok_json(rdqc("publish", str(p1_artifacts["v1"]), "--product-line", "p1"))
    assert first["uploaded"] and first["current"]
    second = ok_json(
        rdqc("publish", str(p1_artifacts["v2"]), "--product-line", "p1", "--no-promote")
    )
    assert second["uploaded"] and not second["current"]

    listed = ok_json(rdqc("models", "list", "--json"))
    assert [(v["version"], v["current"], v["shadow"]) for v in listed] == [
        ("v1", True, False),
        ("v2", False, False),
    ]
    assert listed[1] | {"created_at": "-"} == {
        "product_line": "p1",
        "version": "v2",
        "created_at": "-",
        "backbone": "resnet18",
        "image_size": 64,
        "threshold": listed[1]["threshold"],
        "metrics": {"image_auroc": 0.97},
        "digest": second["digest"],
        "current": False,
        "shadow": False,
        "problem": None,
        "live_workers": 0,
        "shadow_workers": 0,
    }
    assert listed[1]["threshold"] == pytest.approx(0.398)

    shown = ok_json(rdqc("models", "show", "p1", "v2", "--json"))
    assert (shown["version"], shown["digest"], shown["current"]) == ("v2", second["digest"], False)
    assert shown["calibration"]["threshold"] == listed[1]["threshold"]
    assert shown["training"] == {"epochs_completed": 1}

    promoted = ok_json(rdqc("models", "promote", "p1", "v2"))
    assert (promoted["changed"], promoted["action"], promoted["previous"]["version"]) == (
        True,
        "promote",
        "v1",
    )
    assert not ok_json(rdqc("models", "promote", "p1", "v2"))["changed"]
    assert ok_json(rdqc("models", "rollback", "p1"))["version"] == "v1"

    ok_json(rdqc("models", "shadow", "p1", "v2"))
    table = rdqc("models", "list", "--product-line", "p1")
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "LINE",
        "VERSION",
        "CREATED",
        "BACKBONE",
        "SIZE",
        "THRESHOLD",
        "METRICS",
        "DIGEST",
        "STATUS",
        "WORKERS",
    ]
    assert [(row.split()[1], row.split()[-2]) for row in rows] == [
        ("v1", "current"),
        ("v2", "shadow"),
    ]
    assert second["digest"][:12] in rows[1]
    assert "image_auroc=0.970" in rows[1]
    assert ok_json(rdqc("models", "shadow", "p1", "--stop"))["action"] == "unshadow"

    history = ok_json(rdqc("models", "history", "p1", "--json"))
    assert [(e["action"], e["version"]) for e in history] == [
        ("publish", "v1"),
        ("promote", "v2"),
        ("rollback", "v1"),
        ("shadow", "v2"),
        ("unshadow", "v2"),
    ]
    text = rdqc("models", "history", "p1")
    assert text.exit_code == 0, text.output
    assert [line.split()[1] for line in text.stdout.splitlines()[1:]] == [
        "publish",
        "promote",
        "rollback",
        "shadow",
        "unshadow",
    ]


def test_registry_errors_are_one_line_with_exit_code_2(
    rdqc: Any, p1_artifacts: dict[str, Path]
) -> None:
    assert "rdqc models promote p1 VERSION" in one_line_error(rdqc("models", "rollback", "p1"))
    ok_json(rdqc("publish", str(p1_artifacts["v1"]), "--product-line", "p1"))

    refused = one_line_error(rdqc("publish", str(p1_artifacts["v1-other"]), "--product-line", "p1"))
    assert "p1/v1 is already published" in refused
    assert "publish it under a new version" in refused
    assert "p1/v9 is not published" in one_line_error(rdqc("models", "promote", "p1", "v9"))
    assert "no shadowed version" in one_line_error(rdqc("models", "shadow", "p1", "--stop"))
    assert "v1 is the current version" in one_line_error(rdqc("models", "shadow", "p1", "v1"))
    assert "not published" in one_line_error(rdqc("models", "show", "p1", "v9"))


def test_list_marks_a_broken_version_and_says_why_on_stderr(
    rdqc: Any, tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    ok_json(rdqc("publish", str(p1_artifacts["v1"]), "--product-line", "p1"))
    (tmp_path / "models" / "p1" / "v8").mkdir()
    (tmp_path / "models" / "p1" / "v8" / "manifest.json").write_text("{broken")

    result = rdqc("models", "list")

    assert result.exit_code == 0, result.output
    rows = [row.split() for row in result.stdout.splitlines()[1:]]
    assert [(row[1], row[-2]) for row in rows] == [("v1", "current"), ("v8", "broken")]
    [why] = result.stderr.strip().splitlines()
    assert why.startswith("p1/v8 is broken:") and "manifest.json" in why


def test_list_counts_the_live_workers_serving_and_shadow_testing_each_version(
    rdqc: Any, tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    v1 = ok_json(rdqc("publish", str(p1_artifacts["v1"]), "--product-line", "p1"))
    v2 = ok_json(rdqc("publish", str(p1_artifacts["v2"]), "--product-line", "p1", "--no-promote"))
    ok_json(rdqc("models", "shadow", "p1", "v2"))
    store = FileHeartbeatStore(tmp_path / "workers")
    live = ModelVersion(version="v1", digest=v1["digest"])
    for worker, shadow in (("w-1", ModelVersion(version="v2", digest=v2["digest"])), ("w-2", None)):
        now_ms = int(time.time() * 1000)
        store.write(
            Heartbeat(
                worker_id=worker,
                host="node",
                pid=1,
                started_at=now_ms,
                last_seen=now_ms,
                interval_s=5,
                ttl_s=15,
                frames_scored=10,
                frames_dead_lettered=0,
                models={"p1": LineModels(live=live, shadow=shadow)},
            )
        )

    listed = ok_json(rdqc("models", "list", "--json"))
    counts = {v["version"]: (v["live_workers"], v["shadow_workers"]) for v in listed}
    assert counts == {"v1": (2, 0), "v2": (0, 1)}
    table = rdqc("models", "list")
    assert table.exit_code == 0, table.output
    rows = {row.split()[1]: row for row in table.stdout.splitlines()[1:]}
    assert rows["v1"].endswith("current  2")
    assert rows["v2"].endswith("shadow   0 (+1 shadow)")
