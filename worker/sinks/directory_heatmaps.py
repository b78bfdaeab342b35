"""Heatmap PNGs to a local directory, at the same relative keys as in object storage."""

from __future__ import annotations

from pathlib import Path

from rdcore.files import directories_up_to, fsync_directories, write_atomically
from worker.errors import SinkError
from worker.frames import FrameMeta
from worker.sinks.object_keys import heatmap_key


class DirectoryHeatmapSink:
    """``add`` writes each PNG at once (temp file, fsync, rename), so a reader never sees half
    of one; ``flush`` fsyncs the directories that got new entries, making the renames durable."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()
        self._dirty_dirs: set[Path] = set()

    def setup(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"directory heatmap sink: cannot create {self._root}: {exc}") from exc

    def uri_for(self, meta: FrameMeta) -> str:
        return self._path_for(meta).as_uri()

    def add(self, meta: FrameMeta, png: bytes) -> str:
        path = self._path_for(meta)
        try:
            write_atomically(path, png)
        except OSError as exc:
            raise SinkError(f"directory heatmap sink: cannot write {path}: {exc}") from exc
        self._dirty_dirs.update(directories_up_to(path, self._root))
        return path.as_uri()

    def flush(self) -> None:
        try:
            fsync_directories(self._dirty_dirs)
        except OSError as exc:
            raise SinkError(
                f"directory heatmap sink: cannot fsync under {self._root}: {exc}"
            ) from exc
        self._dirty_dirs.clear()

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _path_for(self, meta: FrameMeta) -> Path:
        return self._root / heatmap_key(meta)
