"""The model store in a local directory, with the same layout as the object store."""

from __future__ import annotations

from pathlib import Path

from rdcore.files import directories_up_to, fsync_directories, write_atomically
from worker.errors import ModelLoadError, ModelPublishError


class DirectoryModelFiles:
    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()

    def setup(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelLoadError(f"model directory {self._root}: {exc}") from exc

    def where(self, key: str) -> str:
        return str(self._root / key)

    def read(self, key: str) -> bytes | None:
        path = self._root / key
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ModelLoadError(f"cannot read {path}: {exc}") from exc

    def write(self, key: str, data: bytes | Path) -> None:
        path = self._root / key
        try:
            write_atomically(path, data)
            # Durable before anything that names it is written: the rename and new directories.
            fsync_directories(directories_up_to(path, self._root))
        except OSError as exc:
            raise ModelPublishError(f"cannot write {path}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._root / key
        try:
            path.unlink(missing_ok=True)
            fsync_directories([path.parent])
        except FileNotFoundError:
            return  # its folder is gone too
        except OSError as exc:
            raise ModelPublishError(f"cannot delete {path}: {exc}") from exc

    def names(self, prefix: str) -> list[str]:
        folder = self._root / prefix
        try:
            # Dot files are write_atomically's temp files, not part of the store.
            return sorted(
                f"{entry.name}/" if entry.is_dir() else entry.name
                for entry in folder.iterdir()
                if not entry.name.startswith(".")
            )
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise ModelLoadError(f"cannot list {folder}: {exc}") from exc

    def download(self, key: str, destination: Path) -> None:
        source = self._root / key
        if not source.is_file():
            raise ModelLoadError(f"{source} not found")
        try:
            write_atomically(destination, source)
        except OSError as exc:
            raise ModelLoadError(f"cannot copy {source} to {destination}: {exc}") from exc
