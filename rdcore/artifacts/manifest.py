"""The artifact's manifest: how to rebuild the model, its calibration, and the weights' SHA-256.

This is the one place the manifest JSON is parsed, serialized and written. File names are fixed
and names are checked, because both become object-storage keys and directory names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdcore.calibration import Calibration
from rdcore.config import BACKBONES, ModelConfig
from rdcore.errors import ArtifactError
from rdcore.files import write_atomically

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


def check_safe_name(kind: str, name: str) -> str:
    """``name`` if it is a safe product line or model version, else ArtifactError."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ArtifactError(
            f"{kind} {name!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_storable(section: str, value: object) -> None:
    """ArtifactError unless ``value`` can go into the manifest's strict JSON."""
    # Strict JSON has no NaN: an undefined metric (AUROC without anomalies) must be left out.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{section} cannot be stored in {MANIFEST_FILE}: {exc}") from exc


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

    def digest(self) -> str:
        """The version's identity: SHA-256 of the canonical manifest.

        The manifest records the weights' hash, the preprocessing, the map settings and the
        calibration, so two artifacts that could judge a frame differently never share a digest,
        and the same artifact read back from any store always has the same one.
        """
        canonical = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def write(self, directory: Path, mode: int = 0o644) -> None:
        """Write ``directory/manifest.json`` atomically: a reader sees the old one or this one."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        write_atomically(directory / MANIFEST_FILE, text.encode("utf-8"), mode=mode)


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
