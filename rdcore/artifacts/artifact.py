"""The model artifact: one directory, the same on local disk and in object storage.

``model.safetensors`` holds the full state dict (teacher, bottleneck, decoder): weights only, so
loading never unpickles code. ``manifest.json`` records how to rebuild the model, its
calibration, how it was trained and the SHA-256 of the weights. The manifest is written last
and atomically, so a directory with a manifest is a complete artifact; the hash catches a
weights file that was truncated or altered afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import rdcore
from rdcore.calibration import Calibration
from rdcore.config import BACKBONES, ModelConfig
from rdcore.data.preprocess import Preprocess
from rdcore.errors import ArtifactError
from rdcore.nn.model import ReverseDistillation, reverse_distillation

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"

# Names become object-storage keys and directory names: no separators, no leading dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MANIFEST_KEYS = frozenset(
    {
        "format_version",
        "product_line",
        "model_version",
        "created_at",
        "package_version",
        "model",
        "calibration",
        "training",
        "metrics",
        "weights",
    }
)
_HASH_CHUNK = 1 << 20


def check_safe_name(kind: str, name: str) -> str:
    """``name`` if it is a safe product line or model version, else ArtifactError."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ArtifactError(
            f"{kind} {name!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Manifest:
    format_version: int
    product_line: str
    model_version: str
    created_at: str
    package_version: str
    model: ModelConfig
    calibration: Calibration | None
    training: dict[str, Any]
    metrics: dict[str, float] | None
    weights_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "product_line": self.product_line,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "package_version": self.package_version,
            "model": self.model.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "training": dict(self.training),
            "metrics": None if self.metrics is None else dict(self.metrics),
            "weights": {"file": WEIGHTS_FILE, "sha256": self.weights_sha256},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse a manifest; ArtifactError names the key at fault."""
        if not isinstance(data, dict):
            raise ArtifactError(f"manifest must be a JSON object, got {type(data).__name__}")
        _check_format_version(data.get("format_version"))
        missing, unknown = _MANIFEST_KEYS - set(data), set(data) - _MANIFEST_KEYS
        if missing or unknown:
            raise ArtifactError(
                f"manifest: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}"
            )
        model = _model_config(data["model"])
        calibration = data["calibration"]
        training, metrics = data["training"], data["metrics"]
        if not isinstance(training, dict):
            raise ArtifactError(f"manifest: 'training' must be an object, got {training!r}")
        if metrics is not None and not isinstance(metrics, dict):
            raise ArtifactError(f"manifest: 'metrics' must be an object or null, got {metrics!r}")
        return cls(
            format_version=FORMAT_VERSION,
            product_line=check_safe_name("product_line", data["product_line"]),
            model_version=check_safe_name("model_version", data["model_version"]),
            created_at=str(data["created_at"]),
            package_version=str(data["package_version"]),
            model=model,
            calibration=None if calibration is None else Calibration.from_dict(calibration),
            training=training,
            metrics=None if metrics is None else _metrics(metrics),
            weights_sha256=_weights_sha256(data["weights"]),
        )

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"{path} not found: {directory} is not a model artifact (or was not fully written)"
            ) from exc
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc}") from exc
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
        except ArtifactError as exc:
            raise ArtifactError(f"{path}: {exc}") from exc


def _check_format_version(version: object) -> None:
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ArtifactError(
            f"unsupported artifact format version {version}, this rdqc reads {FORMAT_VERSION}"
        )


def _model_config(data: object) -> ModelConfig:
    # ModelConfig.from_dict fills absent keys with defaults; an artifact must state them all,
    # or a manifest missing 'map_mode' would silently score differently than it was trained.
    if not isinstance(data, dict):
        raise ArtifactError(f"manifest: 'model' must be an object, got {data!r}")
    missing = set(ModelConfig.__dataclass_fields__) - set(data)
    if missing:
        raise ArtifactError(f"manifest: 'model' is missing keys {sorted(missing)}")
    try:
        config = ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest: invalid 'model': {exc}") from exc
    if config.backbone not in BACKBONES:
        raise ArtifactError(
            f"manifest: unknown backbone {config.backbone!r}; this rdqc knows {list(BACKBONES)}"
        )
    return config


def _metrics(metrics: dict[str, Any]) -> dict[str, float]:
    try:
        return {str(name): float(value) for name, value in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest: 'metrics' must map names to numbers: {exc}") from exc


def _weights_sha256(weights: object) -> str:
    # The file name is fixed, not taken from the manifest, so a manifest can never point at
    # another path; it is still checked so an artifact of another layout is refused.
    if not isinstance(weights, dict) or weights.get("file") != WEIGHTS_FILE:
        raise ArtifactError(f"manifest: 'weights' must name file {WEIGHTS_FILE!r}, got {weights!r}")
    sha256 = weights.get("sha256")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ArtifactError(f"manifest: 'weights.sha256' is not a SHA-256 hex digest: {sha256!r}")
    return sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temp_path)``, then rename over ``path``: readers see all of it or nothing."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        write(temp)
        # mkstemp creates 0600; artifacts are read by workers that may run as another user.
        temp.chmod(0o644)
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def _check_storable(section: str, value: object) -> None:
    # Strict JSON has no NaN: an undefined metric (AUROC without anomalies) must be left out.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{section} cannot be stored in {MANIFEST_FILE}: {exc}") from exc


def save_artifact(
    model: ReverseDistillation,
    directory: Path,
    *,
    product_line: str,
    model_version: str,
    calibration: Calibration | None,
    training: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> Manifest:
    """Write ``model`` as an artifact into ``directory``; the manifest is written last."""
    check_safe_name("product_line", product_line)
    check_safe_name("model_version", model_version)
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    # Checked before anything is written, so a refused artifact leaves no files behind.
    _check_storable("training", training)
    _check_storable("metrics", metrics)
    _check_storable("calibration", None if calibration is None else calibration.to_dict())
    directory.mkdir(parents=True, exist_ok=True)
    # An older manifest must not vouch for weights that are being replaced.
    (directory / MANIFEST_FILE).unlink(missing_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights_path = directory / WEIGHTS_FILE
    _write_atomically(weights_path, lambda temp: save_file(state, str(temp)))
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line=product_line,
        model_version=model_version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        package_version=rdcore.__version__,
        model=model.config,
        calibration=calibration,
        training=dict(training),
        metrics=metrics,
        weights_sha256=sha256_file(weights_path),
    )
    text = json.dumps(manifest.to_dict(), indent=2, allow_nan=False) + "\n"
    _write_atomically(
        directory / MANIFEST_FILE, lambda temp: temp.write_text(text, encoding="utf-8")
    )
    return manifest


def read_manifest(directory: Path) -> Manifest:
    return Manifest.read(directory)


def verify_artifact(directory: Path) -> Manifest:
    """The manifest, once the weights file is present and matches its recorded SHA-256."""
    manifest = read_manifest(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{weights_path} not found: the artifact is incomplete")
    actual = sha256_file(weights_path)
    if actual != manifest.weights_sha256:
        raise ArtifactError(
            f"{weights_path} does not match its manifest: sha256 {actual}, expected "
            f"{manifest.weights_sha256}; the file is corrupt or was altered"
        )
    return manifest


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact, loaded and ready to score: model in eval mode on its device."""

    model: ReverseDistillation
    manifest: Manifest
    preprocess: Preprocess
    directory: Path

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def calibration(self) -> Calibration:
        if self.manifest.calibration is None:
            raise ArtifactError(
                f"model {self.manifest.product_line}/{self.version} ({self.directory}) has no "
                "calibration; run `rdqc calibrate`"
            )
        return self.manifest.calibration


def load_artifact(directory: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Verify, rebuild and load an artifact; the loaded weights are bit-identical to the saved."""
    manifest = verify_artifact(directory)
    weights_path = directory / WEIGHTS_FILE
    # The teacher's weights come from the artifact, so nothing is downloaded.
    model = reverse_distillation(manifest.model, "random")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"cannot read {weights_path}: {exc}") from exc
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ArtifactError(
            f"{weights_path} does not fit a {manifest.model.backbone} model: "
            f"missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights_path} does not fit its manifest's model: {exc}") from exc
    model.to(device).eval()
    return LoadedModel(model, manifest, Preprocess.from_config(manifest.model), directory)
