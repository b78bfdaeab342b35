"""Atomic, durable local writes: a reader sees a whole file or none of it, never a torn one.

One mechanism for every file rdqc replaces in place: artifact weights and manifests, training
checkpoints, ONNX exports, and the files of the local (directory) backends.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeAlias

_HASH_CHUNK = 1 << 20

# Bytes to write, a file to copy, or a writer that fills the temp path it is given (for
# libraries such as safetensors that write by file name).
Content: TypeAlias = bytes | Path | Callable[[Path], object]


def write_atomically(path: Path, data: Content, mode: int = 0o644, fsync: bool = True) -> None:
    """Write ``data`` to a temp file beside ``path``, set ``mode``, fsync, rename over ``path``.

    ``mode`` is set explicitly because the temp file starts private (0600) and whoever reads
    ``path`` may run as another user. The rename itself is durable only once the directory is
    fsynced (``fsync_directories``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            if isinstance(data, Path):
                with data.open("rb") as source:
                    shutil.copyfileobj(source, stream)
            elif not callable(data):
                stream.write(data)
        if callable(data):
            data(temp)
        temp.chmod(mode)
        if fsync:
            _fsync(temp)
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def fsync_directories(directories: Iterable[Path]) -> None:
    for directory in sorted(set(directories)):
        _fsync(directory)


def directories_up_to(path: Path, root: Path) -> list[Path]:
    """``path``'s parent directories up to and including ``root``: those a new file may create."""
    return [parent for parent in path.parents if parent.is_relative_to(root)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    # A read-only descriptor suffices: fsync flushes the file (or directory), not the descriptor.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
