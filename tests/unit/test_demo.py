"""The embedded default end to end: `rdqc demo` on the local backends, no services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli import app


@pytest.mark.slow
def test_rdqc_demo_scores_every_frame_swaps_in_a_recalibration_and_dead_letters_a_glitch(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--workdir", str(workdir), "--epochs", "1", "--frames", "6"]
    )

    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in (workdir / "scores.jsonl").read_text().splitlines()]
    assert sorted(r["frame_id"] for r in scored) == [
        f"bottle-caps-cam-01-frame-{i:04d}" for i in range(6)
    ]
    for record in scored:
        if record["is_anomaly"]:
            assert Path(record["heatmap_uri"].removeprefix("file://")).is_file()
        else:
            assert record["heatmap_uri"] == ""
    rejected = list((workdir / "rejected").rglob("*.json"))
    assert len(rejected) == 1
    assert json.loads(rejected[0].read_text())["reason"] == "undecodable"
    assert "bottle-caps-cam-01-frame-corrupt" in result.output
    assert "dead-lettered: 1" in result.output
    # Recalibrated and published mid-stream: the running worker swapped the new version in.
    versions = [record["model_version"] for record in scored]
    assert versions[0] == "demo-v1" and versions[-1] == "demo-v1-recal"
