"""A model repository in a local directory, with the same layout as the object store."""

from __future__ import annotations

from pathlib import Path

from rdcore.errors import ArtifactError
from rdcore.files import directories_up_to, fsync_directories, write_atomically
from worker.modelstore.layout import (
    ARTIFACT_FILES,
    artifact_key,
    decode_pointer,
    encode_pointer,
    pointer_key,
)
from worker.ports import ModelPointer


class DirectoryModelRepository:
    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()

    def setup(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)

    def pointer(self, product_line: str) -> ModelPointer | None:
        path = self._root / pointer_key(product_line)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return decode_pointer(data, str(path))

    def download(self, product_line: str, version: str, destination: str) -> None:
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        for name in ARTIFACT_FILES:
            source = self._root / artifact_key(product_line, version, name)
            if not source.is_file():
                raise ArtifactError(f"{source} not found: {product_line}/{version} is incomplete")
            write_atomically(target / name, source)

    def publish(
        self, artifact_dir: str | Path, product_line: str, version: str, sha256: str
    ) -> None:
        written: list[Path] = []
        for name in ARTIFACT_FILES:
            path = self._root / artifact_key(product_line, version, name)
            write_atomically(path, Path(artifact_dir) / name)
            written.append(path)
        # The version's files must be durable before a pointer can name them.
        fsync_directories(d for path in written for d in directories_up_to(path, self._root))
        pointer = self._root / pointer_key(product_line)
        write_atomically(pointer, encode_pointer(ModelPointer(version, sha256)))
        fsync_directories([pointer.parent])
