"""The model registry: immutable versions, the current and shadow pointers, and their history.

One implementation over any ModelFiles backend (directory.py, s3.py). It is the worker's
ModelRepository (``pointer``, ``shadow``, ``download``) and what ``rdqc publish`` and
``rdqc models`` change the store with (docs/contracts.md §4).

Writes keep one order, so a reader never follows a name to something missing: a version's
weights, then its manifest (which marks the version complete), then a pointer naming it, then
the history entry recording the change. A published version is never written again.
Changes are not locked: one person (or pipeline) at a time changes a product line's pointers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rdcore.artifacts.manifest import MANIFEST_FILE, Manifest
from rdcore.errors import ArtifactError
from worker.errors import ModelPublishError, WorkerError
from worker.modelstore.files import ModelFiles
from worker.modelstore.history import (
    Action,
    HistoryEntry,
    current_user,
    decode_entry,
    encode_entry,
    history_key,
    iso_utc,
    new_entry,
    rollback_target,
)
from worker.modelstore.layout import (
    ARTIFACT_FILES,
    HISTORY_DIR,
    Shadowed,
    VersionRef,
    artifact_key,
    check_version_name,
    decode_pointer,
    decode_shadow,
    encode_pointer,
    encode_shadow,
    history_prefix,
    line_prefix,
    pointer_key,
    shadow_key,
)
from worker.ports import ModelPointer


class RegistryError(WorkerError):
    """A registry change that cannot be made as asked; the message says what to do instead."""


class VersionExists(RegistryError, ModelPublishError):
    """Another artifact is already published under this version name."""


class ModelRegistry:
    def __init__(self, files: ModelFiles, *, by: str | None = None) -> None:
        """``by``: who the history entries name; default ``user@host`` of this process."""
        self._files = files
        self._by = by or current_user()

    def setup(self) -> None:
        self._files.setup()

    # --- what workers read --------------------------------------------------------------------

    def pointer(self, product_line: str) -> ModelPointer | None:
        key = pointer_key(product_line)
        data = self._files.read(key)
        return None if data is None else decode_pointer(data, self._files.where(key))

    def shadow(self, product_line: str) -> ModelPointer | None:
        shadowed = self.shadowed(product_line)
        return None if shadowed is None else shadowed.pointer

    def download(self, product_line: str, version: str, destination: str) -> None:
        for name in ARTIFACT_FILES:
            key = artifact_key(product_line, version, name)
            self._files.download(key, Path(destination) / name)

    # --- what people read ---------------------------------------------------------------------

    def shadowed(self, product_line: str) -> Shadowed | None:
        key = shadow_key(product_line)
        data = self._files.read(key)
        return None if data is None else decode_shadow(data, self._files.where(key))

    def product_lines(self) -> list[str]:
        return [name.removesuffix("/") for name in self._files.names("") if name.endswith("/")]

    def version_names(self, product_line: str) -> list[str]:
        """The line's version folders, by name; one without a manifest is no published version
        (``manifest`` says so), but an upload cut off or still under way."""
        names = self._files.names(line_prefix(product_line))
        return [n.removesuffix("/") for n in names if n.endswith("/") and n != f"{HISTORY_DIR}/"]

    def manifest(self, product_line: str, version: str) -> Manifest:
        manifest = self._find_manifest(product_line, version)
        if manifest is None:
            raise RegistryError(
                f"{product_line}/{version} is not published in {self._files.where('')}; "
                f"`rdqc models list --product-line {product_line}` shows its versions"
            )
        return manifest

    def history(self, product_line: str) -> list[HistoryEntry]:
        """Every pointer change of the line, oldest first."""
        return [self._entry(product_line, name) for name in self._history_names(product_line)]

    # --- changes ------------------------------------------------------------------------------

    def upload(self, artifact_dir: Path, manifest: Manifest) -> bool:
        """Upload a verified artifact as its manifest's version; False when that very version
        (same digest) is there already. Another artifact under a published name is refused."""
        line, version = manifest.product_line, check_version_name(manifest.model_version)
        published = self._find_manifest(line, version)
        if published is None:
            for name in ARTIFACT_FILES:
                self._files.write(artifact_key(line, version, name), artifact_dir / name)
            return True
        if published.digest() != manifest.digest():
            raise VersionExists(
                f"{line}/{version} is already published with digest {published.digest()}, "
                f"and this artifact's digest is {manifest.digest()}: published versions never "
                "change; publish it under a new version"
            )
        return False

    def promote(
        self, product_line: str, version: str, *, action: Action = "promote"
    ) -> HistoryEntry | None:
        """Point ``current.json`` at a published version (ending any shadow); None when it
        already does."""
        target, sha256 = self._ref(product_line, version)
        current = self.pointer(product_line)
        if current == ModelPointer(version, sha256, target.digest):
            return None
        return self._move_current(product_line, action, target, sha256, current)

    def rollback(self, product_line: str) -> HistoryEntry:
        """Point ``current.json`` back to what it named before the last change not yet undone."""
        names = reversed(self._history_names(product_line))
        recorded = rollback_target(self._entry(product_line, name) for name in names)
        if recorded is None:
            raise RegistryError(
                f"the history of {product_line} holds no earlier current version to roll back "
                f"to; `rdqc models promote {product_line} VERSION` points it at any version"
            )
        target, sha256 = self._ref(product_line, recorded.version)
        if target != recorded:
            raise RegistryError(
                f"{product_line}/{recorded.version} has digest {target.digest}, but its history "
                f"recorded {recorded.digest}: it was changed in place; promote a version instead"
            )
        current = self.pointer(product_line)
        return self._move_current(product_line, "rollback", target, sha256, current)

    def start_shadow(self, product_line: str, version: str) -> HistoryEntry | None:
        """Shadow a published version against the current one; None when it already is."""
        target, sha256 = self._ref(product_line, version)
        current = self.pointer(product_line)
        if current is not None and current.version == version:
            raise RegistryError(
                f"{product_line}/{version} is the current version; shadow a candidate instead"
            )
        old = self.shadowed(product_line)
        if old is not None and old.ref == target:
            return None
        shadowed = Shadowed(version, sha256, target.digest, iso_utc(datetime.now(UTC)))
        self._files.write(shadow_key(product_line), encode_shadow(shadowed))
        return self._record(product_line, "shadow", target, None if old is None else old.ref)

    def stop_shadow(self, product_line: str) -> HistoryEntry:
        entry = self._end_shadow(product_line)
        if entry is None:
            raise RegistryError(f"{product_line} has no shadowed version to stop")
        return entry

    # --- helpers ------------------------------------------------------------------------------

    def _move_current(
        self,
        product_line: str,
        action: Action,
        target: VersionRef,
        sha256: str,
        current: ModelPointer | None,
    ) -> HistoryEntry:
        # Every change of the current version ends a shadow: the candidate was compared with
        # a version that no longer serves (or has just become the current one).
        self._end_shadow(product_line)
        self._files.write(pointer_key(product_line), encode_pointer(target, sha256))
        previous = None if current is None else self._previous(product_line, current)
        return self._record(product_line, action, target, previous)

    def _end_shadow(self, product_line: str) -> HistoryEntry | None:
        old = self.shadowed(product_line)
        if old is None:
            return None
        self._files.delete(shadow_key(product_line))
        return self._record(product_line, "unshadow", old.ref, old.ref)

    def _record(
        self, product_line: str, action: Action, target: VersionRef, previous: VersionRef | None
    ) -> HistoryEntry:
        name, entry = new_entry(action, target, previous, self._by)
        self._files.write(history_key(product_line, name), encode_entry(entry))
        return entry

    def _previous(self, product_line: str, pointer: ModelPointer) -> VersionRef | None:
        if pointer.digest is not None:
            return VersionRef(pointer.version, pointer.digest)
        # A v1 pointer names no digest: the version's manifest has it, unless it is gone or
        # broken, and then there is nothing to roll back to; replacing it must still work.
        try:
            manifest = self._find_manifest(product_line, pointer.version)
        except ArtifactError:
            return None
        return None if manifest is None else VersionRef(pointer.version, manifest.digest())

    def _ref(self, product_line: str, version: str) -> tuple[VersionRef, str]:
        """A published version's reference and weights sha256, for a pointer to name it."""
        manifest = self.manifest(product_line, version)
        return VersionRef(version, manifest.digest()), manifest.weights_sha256

    def _find_manifest(self, product_line: str, version: str) -> Manifest | None:
        key = artifact_key(product_line, version, MANIFEST_FILE)
        data = self._files.read(key)
        if data is None:
            return None
        try:
            manifest = Manifest.from_dict(json.loads(data))
        except (ValueError, ArtifactError) as exc:
            raise ArtifactError(f"{self._files.where(key)}: {exc}") from exc
        if (manifest.product_line, manifest.model_version) != (product_line, version):
            raise ArtifactError(
                f"{self._files.where(key)} is the manifest of "
                f"{manifest.product_line}/{manifest.model_version}, not {product_line}/{version}"
            )
        return manifest

    def _history_names(self, product_line: str) -> list[str]:
        return [n for n in self._files.names(history_prefix(product_line)) if n.endswith(".json")]

    def _entry(self, product_line: str, name: str) -> HistoryEntry:
        key = history_key(product_line, name)
        data = self._files.read(key)
        if data is None:
            raise ArtifactError(f"{self._files.where(key)} vanished while the history was read")
        return decode_entry(data, self._files.where(key))
