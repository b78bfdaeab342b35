"""Artifacts load bit-exactly, and anything tampered with, truncated or foreign is refused."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import rdcore
from rdcore import ArtifactError, ModelConfig, ReverseDistillation, reverse_distillation
from rdcore.artifacts.artifact import load_artifact, read_manifest, save_artifact, verify_artifact
from rdcore.artifacts.manifest import MANIFEST_FILE, WEIGHTS_FILE
from rdcore.calibration import calibrate
from rdcore.files import sha256_file

CONFIG = ModelConfig(backbone="resnet18", image_size=64)
TRAINING = {"epochs": 1, "lr": 0.005, "seed": 0, "batch_size": 2, "teacher_weights": "random"}


@pytest.fixture(scope="module")
def model() -> ReverseDistillation:
    torch.manual_seed(0)
    model = reverse_distillation(CONFIG, "random")
    # Move the student's BatchNorm statistics away from their initial values, so the round trip
    # has buffers worth checking.
    model.train()
    with torch.no_grad():
        model.features(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def saved(model: ReverseDistillation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("artifact") / "bottles" / "v1"
    save_artifact(
        model,
        directory,
        product_line="bottles",
        model_version="v1",
        calibration=None,
        training=TRAINING,
        metrics={"image_auroc": 0.98},
    )
    return directory


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "copy"))


def test_round_trip_is_bit_exact(model: ReverseDistillation, saved: Path) -> None:
    loaded = load_artifact(saved)

    original, restored = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    for key, value in original.items():
        assert torch.equal(value, restored[key]), key
    assert not loaded.model.training
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, actual = model(images), loaded.model(images)
    assert torch.equal(expected.score, actual.score)
    assert torch.equal(expected.anomaly_map, actual.anomaly_map)
    assert loaded.version == "v1"
    assert loaded.preprocess.image_size == 64


def test_manifest_records_what_rebuilds_the_model(saved: Path) -> None:
    data = json.loads((saved / MANIFEST_FILE).read_text())
    manifest = read_manifest(saved)

    assert data["format_version"] == 1
    assert data["weights"] == {"file": WEIGHTS_FILE, "sha256": sha256_file(saved / WEIGHTS_FILE)}
    assert data["calibration"] is None
    assert manifest.model == CONFIG
    assert manifest.training == TRAINING
    assert manifest.metrics == {"image_auroc": 0.98}
    assert manifest.package_version == rdcore.__version__
    assert manifest.created_at.endswith("+00:00")
    # No temporary files are left behind.
    assert sorted(p.name for p in saved.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])


def test_flipped_byte_in_weights_is_refused(copy: Path) -> None:
    weights = copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match="sha256") as error:
        verify_artifact(copy)
    assert WEIGHTS_FILE in str(error.value)
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(copy)


def test_missing_weights_are_refused(copy: Path) -> None:
    (copy / WEIGHTS_FILE).unlink()

    with pytest.raises(ArtifactError, match=WEIGHTS_FILE):
        load_artifact(copy)


def test_other_format_version_is_refused(copy: Path) -> None:
    manifest_path = copy / MANIFEST_FILE
    data = json.loads(manifest_path.read_text())
    data["format_version"] = 2
    manifest_path.write_text(json.dumps(data))

    with pytest.raises(
        ArtifactError, match="unsupported artifact format version 2, this rdqc reads 1"
    ):
        load_artifact(copy)


def test_manifest_missing_a_key_is_refused_naming_it(copy: Path) -> None:
    manifest_path = copy / MANIFEST_FILE
    data = json.loads(manifest_path.read_text())
    del data["model"]
    manifest_path.write_text(json.dumps(data))

    with pytest.raises(ArtifactError, match="'model'"):
        read_manifest(copy)


def test_model_settings_are_never_defaulted(copy: Path) -> None:
    manifest_path = copy / MANIFEST_FILE
    data = json.loads(manifest_path.read_text())
    del data["model"]["map_mode"]
    manifest_path.write_text(json.dumps(data))

    with pytest.raises(ArtifactError, match="map_mode"):
        read_manifest(copy)


def test_directory_without_manifest_is_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=MANIFEST_FILE):
        load_artifact(tmp_path)


def test_calibration_round_trip(model: ReverseDistillation, tmp_path: Path) -> None:
    calibration = calibrate([0.1, 0.2, 0.25, 0.3, 0.5])
    save_artifact(
        model,
        tmp_path,
        product_line="bottles",
        model_version="v2",
        calibration=calibration,
        training=TRAINING,
    )

    loaded = load_artifact(tmp_path)

    assert loaded.calibration == calibration
    assert read_manifest(tmp_path).metrics is None


def test_missing_calibration_raises_with_a_hint(saved: Path) -> None:
    loaded = load_artifact(saved)

    with pytest.raises(ArtifactError, match="rdqc calibrate"):
        _ = loaded.calibration


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", float("nan")),
        ("mean", float("inf")),
        ("std", float("nan")),
        ("min", float("-inf")),
        ("0.99", float("nan")),
    ],
)
def test_a_manifest_with_a_non_finite_calibration_is_refused_at_load(
    model: ReverseDistillation, tmp_path: Path, field: str, value: float
) -> None:
    save_artifact(
        model,
        tmp_path,
        product_line="bottles",
        model_version="v2",
        calibration=calibrate([0.1, 0.2, 0.25, 0.3, 0.5]),
        training=TRAINING,
    )
    path = tmp_path / MANIFEST_FILE
    data = json.loads(path.read_text())
    section = data["calibration"]["quantiles"] if field == "0.99" else data["calibration"]
    section[field] = value
    path.write_text(json.dumps(data))  # Python writes NaN and Infinity, and reads them back

    # A NaN threshold would flag nothing and normalize every score to NaN: refused, naming
    # the manifest and the field.
    message = f"{path}: calibration: '{field}' must be a finite number"
    with pytest.raises(ArtifactError, match=re.escape(message)):
        load_artifact(tmp_path)


def test_nan_metric_is_refused_before_writing(model: ReverseDistillation, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="metrics"):
        save_artifact(
            model,
            tmp_path / "out",
            product_line="bottles",
            model_version="v1",
            calibration=None,
            training=TRAINING,
            metrics={"image_auroc": float("nan")},
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("product_line", ["../evil", "a/b", "", ".hidden", "x" * 129, "a b"])
def test_unsafe_product_line_is_rejected(
    model: ReverseDistillation, tmp_path: Path, product_line: str
) -> None:
    with pytest.raises(ArtifactError, match="product_line"):
        save_artifact(
            model,
            tmp_path / "out",
            product_line=product_line,
            model_version="v1",
            calibration=None,
            training=TRAINING,
        )
    assert not (tmp_path / "out").exists()


def test_the_digest_names_the_content_whatever_store_it_was_read_from(
    saved: Path, copy: Path
) -> None:
    manifest = read_manifest(saved)

    assert read_manifest(copy).digest() == manifest.digest()  # a byte-for-byte copy
    manifest.write(copy)  # rewritten: the same content in other formatting
    assert read_manifest(copy).digest() == manifest.digest()


@pytest.mark.parametrize(
    "change",
    [
        {"calibration": calibrate([0.1, 0.2, 0.3])},
        {"weights_sha256": "0" * 64},
        {"model": ModelConfig(backbone="resnet18", image_size=96)},
    ],
    ids=["threshold", "weights", "preprocessing"],
)
def test_anything_that_changes_a_verdict_changes_the_digest(
    saved: Path, change: dict[str, object]
) -> None:
    manifest = read_manifest(saved)
    assert dataclasses.replace(manifest, **change).digest() != manifest.digest()
