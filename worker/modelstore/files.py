"""What a model store backend does: keep files by key. Everything else is the registry's.

Like dramatiq's result backends, each backend (directory.py, s3.py) implements only these few
operations; the layout, immutability, pointers and history live once, in registry.py.
Reads raise ModelLoadError and writes ModelPublishError when the store cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ModelFiles(Protocol):
    def setup(self) -> None:
        """Check (or, for publishing, create) the store; fails early when it is unusable."""

    def where(self, key: str) -> str:
        """The key as a location a person can find: ``s3://bucket/key`` or a path."""

    def read(self, key: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""

    def write(self, key: str, data: bytes | Path) -> None:
        """Store bytes or a local file's content; a reader sees the whole file or none of it."""

    def delete(self, key: str) -> None:
        """Remove the file; nothing happens when it is absent."""

    def names(self, prefix: str) -> list[str]:
        """The names directly under ``prefix`` (which ends with ``/`` or is empty), sorted;
        folders end with ``/``."""

    def download(self, key: str, destination: Path) -> None:
        """Copy the file to the local path ``destination``, whole or not at all."""
