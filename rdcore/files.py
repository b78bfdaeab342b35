"""Durable local writes for the embedded backends: readers see a whole file or none of it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomically(path: Path, data: bytes | Path) -> None:
    """Write ``data`` (bytes, or a file to copy) to a temp file beside ``path``, fsync it, then
    rename it over ``path``.

    The rename itself is durable only once the directory is fsynced (``fsync_directories``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            if isinstance(data, Path):
                with data.open("rb") as source:
                    shutil.copyfileobj(source, stream)
            else:
                stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temp_name).replace(path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def fsync_directories(directories: Iterable[Path]) -> None:
    for directory in sorted(set(directories)):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def directories_up_to(path: Path, root: Path) -> list[Path]:
    """``path``'s parent directories up to and including ``root``: those a new file may create."""
    return [parent for parent in path.parents if parent.is_relative_to(root)]
