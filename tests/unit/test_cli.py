"""The command line end to end on a tiny synthetic data set: train, eval, score, calibrate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rdcore.artifacts.artifact import read_manifest, verify_artifact
from rdcore.data.synthetic import write_mvtec_layout
from worker.cli import app

runner = CliRunner()
FAST = ["--device", "cpu"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("product")
    write_mvtec_layout(root, train_good=8, test_good=3, test_defect=1, seed=0, size=64)
    return root


@pytest.fixture(scope="module")
def artifact(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("artifact")
    result = runner.invoke(
        app,
        [
            "train",
            str(dataset / "train" / "good"),
            "--output",
            str(output),
            "--product-line",
            "widget",
            "--model-version",
            "v1",
            "--backbone",
            "resnet18",
            "--teacher-weights",
            "random",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--holdout",
            "0.25",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model_version"] == "v1"
    assert summary["epochs"] == 1
    assert summary["threshold"] is not None
    return output


def test_eval_prints_metrics_and_writes_the_report(
    artifact: Path, dataset: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(artifact), str(dataset), "--report", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("image_auroc", "pixel_auroc", "aupro_0.3", "pro_official"):
        assert 0.0 <= metrics[key] <= 1.0
    assert "f1_threshold" in metrics
    assert metrics["test_good"] == 3
    assert metrics["test_defective"] == 3
    for name in ("roc_image.png", "roc_pixel.png", "score_histogram.png", "index.html"):
        assert (report / name).stat().st_size > 0
    assert json.loads((report / "metrics.json").read_text()) == metrics
    samples = sorted((report / "samples").glob("*.png"))
    assert samples
    index = (report / "index.html").read_text()
    assert "image_auroc" in index
    assert all(f"samples/{p.name}" in index for p in samples)


def test_score_prints_one_json_line_per_image(
    artifact: Path, dataset: Path, tmp_path: Path
) -> None:
    overlays = tmp_path / "overlays"
    single = dataset / "test" / "spot" / "000.png"
    result = runner.invoke(
        app,
        [
            "score",
            str(artifact),
            str(dataset / "test" / "good"),
            str(single),
            *FAST,
            "--overlays",
            str(overlays),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["path"]).name for line in lines] == [
        "000.png",
        "001.png",
        "002.png",
        "000.png",
    ]
    assert lines[-1]["path"] == str(single)
    for line in lines:
        assert 0.0 <= line["score"] <= 1.0
        assert line["is_anomaly"] == (line["raw_score"] >= line["threshold"])
    # Two inputs share the name 000.png; neither overlay overwrites the other.
    assert len(list(overlays.glob("*.png"))) == 4


def test_calibrate_writes_a_new_version_and_leaves_the_artifact_as_it_was(
    artifact: Path, dataset: Path, tmp_path: Path
) -> None:
    before = read_manifest(artifact)
    manifest_bytes = (artifact / "manifest.json").read_bytes()
    output = tmp_path / "recalibrated"
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(artifact),
            str(dataset / "test" / "good"),
            "--quantile",
            "0.5",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    after = verify_artifact(output)
    assert re.fullmatch(r"v1-cal\d{8}T\d{6}Z", after.model_version)
    assert printed["model_version"] == after.model_version
    assert after.calibration is not None
    assert after.calibration.quantile == 0.5
    assert after.calibration.count == 3
    assert printed["calibration"]["threshold"] == after.calibration.threshold
    assert after.weights_sha256 == before.weights_sha256
    assert after.training == {
        **before.training,
        "recalibrated_from": {"version": "v1", "digest": before.digest()},
    }
    assert after.digest() != before.digest()
    assert (artifact / "manifest.json").read_bytes() == manifest_bytes

    # Named by --new-version, beside the original by default; an existing folder is refused.
    named = ["calibrate", str(artifact), str(dataset / "test" / "good"), "--new-version", "v2"]
    assert runner.invoke(app, named).exit_code == 0
    assert read_manifest(artifact.parent / "v2").model_version == "v2"
    again = runner.invoke(app, named)
    assert again.exit_code == 2
    assert "not empty" in again.stderr


def test_missing_training_folder_is_a_one_line_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    result = runner.invoke(
        app, ["train", str(missing), "--output", str(tmp_path / "out"), "--product-line", "x"]
    )
    assert result.exit_code == 2
    assert "no-such-folder" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_artifact_is_a_user_error(dataset: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-artifact"
    result = runner.invoke(app, ["eval", str(missing), str(dataset), "--report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no-artifact" in result.stderr


def test_invalid_image_size_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            str(tmp_path),
            "--output",
            str(tmp_path),
            "--product-line",
            "x",
            "--image-size",
            "100",
        ],
    )
    assert result.exit_code == 2
    assert "multiple of 32" in result.output
