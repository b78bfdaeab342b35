"""The model store layout (docs/contracts.md §4) and its pointer file, ``current.json``."""

from __future__ import annotations

import json
import re

from rdcore.artifacts.manifest import MANIFEST_FILE, WEIGHTS_FILE, check_safe_name
from rdcore.errors import ArtifactError
from worker.ports import ModelPointer

POINTER_FILE = "current.json"
# Weights first, manifest second: a version directory with a manifest is complete.
ARTIFACT_FILES = (WEIGHTS_FILE, MANIFEST_FILE)

_SHA256 = re.compile(r"[0-9a-f]{64}")


def artifact_key(product_line: str, version: str, file_name: str) -> str:
    """``{product_line}/{version}/{file}``, refusing names that could leave their prefix."""
    check_safe_name("product_line", product_line)
    check_safe_name("model version", version)
    return f"{product_line}/{version}/{file_name}"


def pointer_key(product_line: str) -> str:
    check_safe_name("product_line", product_line)
    return f"{product_line}/{POINTER_FILE}"


def encode_pointer(pointer: ModelPointer) -> bytes:
    return (json.dumps({"version": pointer.version, "sha256": pointer.sha256}) + "\n").encode()


def decode_pointer(data: bytes, where: str) -> ModelPointer:
    """Parse a ``current.json``; ArtifactError says what is wrong with it and where it is."""
    try:
        parsed = json.loads(data)
        version, sha256 = parsed["version"], parsed["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f'{where} is not a model pointer {{"version": ..., "sha256": ...}}: {exc}'
        ) from exc
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ArtifactError(f"{where}: sha256 {sha256!r} is not a SHA-256 hex digest")
    try:
        return ModelPointer(check_safe_name("model version", version), sha256)
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}") from exc
