"""The local download cache of model artifacts: ``cache_dir/{product_line}/{version}/``.

A version is downloaded into a temp directory beside its final place and renamed into place
once verified, so the cache only ever holds whole artifacts; a cached copy is verified again
before each use, and one that fails, or is not the artifact the pointer's digest names, is
downloaded afresh. A download whose manifest digest differs from the pointer's is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import structlog
import torch

from rdcore.artifacts.artifact import LoadedModel, verify_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.errors import ArtifactError
from worker.ports import ModelPointer, ModelRepository

log = structlog.get_logger(__name__)


class DownloadCache:
    def __init__(self, repository: ModelRepository, cache_dir: str | Path) -> None:
        self._repository = repository
        self._cache_dir = Path(cache_dir)

    def fetch(self, product_line: str, pointer: ModelPointer) -> Path:
        """The verified local copy of the pointer's version, downloaded if not cached yet."""
        final = self._cache_dir / product_line / pointer.version
        manifest = None
        if final.is_dir():
            try:
                manifest = verify_artifact(final)
                _check_digest(product_line, pointer, manifest, "the cached copy")
            except ArtifactError as exc:
                # Corrupt, or another artifact once stored under this version name (a store
                # rebuilt, or a version rewritten in place before versions were immutable).
                log.warning("model_cache_stale_redownloading", path=str(final), error=str(exc))
                manifest = None
                shutil.rmtree(final)
        if manifest is None:
            final.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f".{pointer.version}.", dir=final.parent))
            try:
                self._repository.download(product_line, pointer.version, str(temp))
                manifest = verify_artifact(temp)
                try:
                    temp.rename(final)
                except OSError:
                    # Another worker sharing the cache put the same version there first.
                    manifest = verify_artifact(final)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
        if manifest.weights_sha256 != pointer.sha256:
            raise ArtifactError(
                f"the pointer of {product_line} names weights sha256 {pointer.sha256}, but "
                f"version {pointer.version} has {manifest.weights_sha256}: the upload is corrupt "
                "or the pointer is stale"
            )
        if manifest.product_line != product_line or manifest.model_version != pointer.version:
            raise ArtifactError(
                f"{product_line}/{pointer.version} holds the model "
                f"{manifest.product_line}/{manifest.model_version}"
            )
        _check_digest(product_line, pointer, manifest, "the store's copy")
        return final


def _check_digest(product_line: str, pointer: ModelPointer, manifest: Manifest, which: str) -> None:
    """The artifact must be the very version the pointer names; a v1 pointer names no digest."""
    if pointer.digest is not None and manifest.digest() != pointer.digest:
        raise ArtifactError(
            f"the pointer of {product_line} names {pointer.version} with digest "
            f"{pointer.digest}, but {which} has digest {manifest.digest()}: the pointer is "
            "stale or the version was changed in place"
        )


def warm_up(model: LoadedModel) -> None:
    """One forward pass, so the first real batch doesn't pay for lazy initialization.

    Weights with NaN or infinite values pass every file check but score every frame NaN;
    such a model is refused here instead of dead-lettering each frame it is given.
    """
    size = model.preprocess.image_size
    device = next(model.model.parameters()).device
    with torch.inference_mode():
        score = model.model(torch.zeros(1, 3, size, size, device=device)).score
    if not bool(torch.isfinite(score).all()):
        raise ArtifactError(
            f"model {model.manifest.product_line}/{model.version} ({model.directory}) scores a "
            f"blank image {score.tolist()}: its weights hold NaN or infinite values"
        )
