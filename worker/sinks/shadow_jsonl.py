"""Shadow-test entries in a local JSON-lines file: ``shadow.jsonl`` beside the scores file.

The embedded counterpart of the Redis shadow stream (docs/contracts.md §2), one typed JSON object
per line for every product line. Best effort like the stream: a write that fails is lost, and a
redelivered frame may appear twice (the comparison keeps its first entry). A line torn by a
crash is skipped by the reader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from worker.errors import SinkError
from worker.sinks.shadow_entry import ShadowEntry, StoredEntries

SHADOW_FILE = "shadow.jsonl"


def shadow_file_beside(scores_path: str | Path) -> Path:
    """``shadow.jsonl`` in the scores file's directory."""
    return Path(scores_path).parent / SHADOW_FILE


class JsonlShadowSink:
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._file: BinaryIO | None = None

    def setup(self) -> None:
        if self._file is not None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("ab")
        except OSError as exc:
            raise SinkError(f"JSON-lines shadow sink: cannot open {self._path}: {exc}") from exc

    def write(self, entries: Sequence[ShadowEntry]) -> None:
        if not entries:
            return
        if self._file is None:
            raise SinkError("JSON-lines shadow sink: write before setup")
        lines = "".join(json.dumps(e.typed(), separators=(",", ":")) + "\n" for e in entries)
        try:
            self._file.write(lines.encode("utf-8"))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise SinkError(
                f"JSON-lines shadow sink: {len(entries)} entries not written to {self._path}: {exc}"
            ) from exc

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_shadow_file(path: Path, product_line: str) -> StoredEntries:
    """The product line's entries in the file, oldest first; unparsable lines are skipped."""
    entries: list[ShadowEntry] = []
    skipped = 0
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                record = json.loads(line)
                if record.get("product_line") == product_line:
                    entries.append(ShadowEntry.parse(record, f"{path} line {number}"))
            except (ValueError, AttributeError):
                skipped += 1  # a line torn by a crash, or a record that is no shadow entry
    return StoredEntries(entries, skipped)
