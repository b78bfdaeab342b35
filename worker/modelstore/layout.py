"""The model store layout (docs/contracts.md §4): keys, and the pointer files' JSON.

``{line}/{version}/`` holds an immutable artifact; ``{line}/current.json`` names the version to
serve, ``{line}/shadow.json`` a candidate scored alongside it, each by version, weights sha256
and manifest digest; ``{line}/history/`` records every change of either (modelstore/history.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rdcore.artifacts.manifest import MANIFEST_FILE, WEIGHTS_FILE, Manifest, check_safe_name
from rdcore.errors import ArtifactError
from worker.ports import ModelPointer

POINTER_FILE = "current.json"
SHADOW_FILE = "shadow.json"
HISTORY_DIR = "history"
# Weights first, manifest second: a version directory with a manifest is complete.
ARTIFACT_FILES = (WEIGHTS_FILE, MANIFEST_FILE)
# Names that sit beside the versions of a line, so no version may take them.
RESERVED_NAMES = frozenset({POINTER_FILE, SHADOW_FILE, HISTORY_DIR})

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VersionRef:
    """A version by name and digest, as the history records it."""

    version: str
    digest: str


@dataclass(frozen=True)
class Shadowed:
    """``shadow.json``: the candidate version and when its shadowing began (ISO 8601, UTC)."""

    version: str
    sha256: str
    digest: str
    since: str

    @property
    def pointer(self) -> ModelPointer:
        return ModelPointer(self.version, self.sha256, self.digest)

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.version, self.digest)


def check_version_name(version: str) -> str:
    check_safe_name("model version", version)
    if version in RESERVED_NAMES:
        raise ArtifactError(
            f"model version {version!r} is reserved by the store layout "
            f"({', '.join(sorted(RESERVED_NAMES))}); choose another version name"
        )
    return version


def line_prefix(product_line: str) -> str:
    """``{product_line}/``, refusing names that could leave their prefix."""
    return f"{check_safe_name('product_line', product_line)}/"


def artifact_key(product_line: str, version: str, file_name: str) -> str:
    return f"{line_prefix(product_line)}{check_version_name(version)}/{file_name}"


def pointer_key(product_line: str) -> str:
    return f"{line_prefix(product_line)}{POINTER_FILE}"


def shadow_key(product_line: str) -> str:
    return f"{line_prefix(product_line)}{SHADOW_FILE}"


def history_prefix(product_line: str) -> str:
    return f"{line_prefix(product_line)}{HISTORY_DIR}/"


def check_digest(what: str, value: object) -> str:
    if not isinstance(value, str) or not _HEX_DIGEST.fullmatch(value):
        raise ArtifactError(f"{what} {value!r} is not a SHA-256 hex digest")
    return value


def pointer_names(pointer: ModelPointer | None, manifest: Manifest) -> bool:
    """Whether the pointer names this very artifact: by digest, the version's identity, or by
    version and weights sha256 for a v1 pointer, which has no digest."""
    if pointer is None or pointer.version != manifest.model_version:
        return False
    if pointer.digest is None:
        return pointer.sha256 == manifest.weights_sha256
    return pointer.digest == manifest.digest()


def to_json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


def encode_pointer(target: VersionRef, sha256: str) -> bytes:
    """A v2 ``current.json``: always with the version's digest."""
    return to_json({"version": target.version, "sha256": sha256, "digest": target.digest})


def decode_pointer(data: bytes, where: str) -> ModelPointer:
    """Parse a ``current.json``, v2 or v1 (no digest); ArtifactError says what is wrong where."""
    parsed = _object(data, where, '{"version": ..., "sha256": ..., "digest": ...}')
    try:
        return _pointer(parsed)
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}") from exc


def encode_shadow(shadowed: Shadowed) -> bytes:
    return to_json(
        {
            "version": shadowed.version,
            "sha256": shadowed.sha256,
            "digest": shadowed.digest,
            "since": shadowed.since,
        }
    )


def decode_shadow(data: bytes, where: str) -> Shadowed:
    parsed = _object(data, where, '{"version": ..., "sha256": ..., "digest": ..., "since": ...}')
    try:
        since = parsed.get("since")
        if not isinstance(since, str):
            raise ArtifactError(f"'since' must be an ISO 8601 time, got {since!r}")
        digest = check_digest("digest", parsed.get("digest"))
        pointer = _pointer(parsed)
        return Shadowed(pointer.version, pointer.sha256, digest, since)
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}") from exc


def _object(data: bytes, where: str, shape: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise ArtifactError(f"{where} is not JSON {shape}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ArtifactError(f"{where} is not a JSON object {shape}")
    return parsed


def _pointer(parsed: dict[str, Any]) -> ModelPointer:
    if "version" not in parsed or "sha256" not in parsed:
        raise ArtifactError(f"'version' and 'sha256' are required, got keys {sorted(parsed)}")
    digest = parsed.get("digest")
    if digest is not None:
        check_digest("digest", digest)
    return ModelPointer(
        check_version_name(parsed["version"]), check_digest("sha256", parsed["sha256"]), digest
    )
