"""Scores to a local JSON-lines file: one typed JSON object per scored frame.

A frame is known by its product line, camera and frame id, as in Redis (two cameras may both
number their frames ``000123``). The frames already in the file are loaded at setup and kept in
memory, and the first record of a frame wins: a redelivered frame (the worker restarted before it
committed, perhaps onto a newer model) writes no second line. A torn last line (the process died
mid-write, before fsync returned) is cut off at setup: its frame was never reported durable, so
its offset was not committed and it will be scored again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

import structlog

from worker.errors import SinkError
from worker.frames import FrameResult
from worker.sinks.score_json import result_json

log = structlog.get_logger(__name__)

FrameKey = tuple[str, str, str]
"""(product_line, camera_id, frame_id): what makes a frame unique."""


def _frame_key(result: FrameResult) -> FrameKey:
    return (result.meta.product_line, result.meta.camera_id, result.meta.frame_id)


class JsonlScoreSink:
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._seen: set[FrameKey] = set()
        self._pending: dict[FrameKey, str] = {}
        self._file: BinaryIO | None = None

    def setup(self) -> None:
        if self._file is not None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._seen = self._load_keys()
            self._file = self._path.open("ab")
        except OSError as exc:
            raise SinkError(f"JSON-lines score sink: cannot open {self._path}: {exc}") from exc

    def add(self, result: FrameResult) -> None:
        key = _frame_key(result)
        if key not in self._seen:
            self._pending.setdefault(key, result_json(result))

    def flush(self) -> None:
        if not self._pending:
            return
        if self._file is None:
            raise SinkError("JSON-lines score sink: flush before setup")
        data = "".join(line + "\n" for line in self._pending.values()).encode("utf-8")
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise SinkError(
                f"JSON-lines score sink: {len(self._pending)} results not written to "
                f"{self._path}: {exc}"
            ) from exc
        self._seen.update(self._pending)
        self._pending = {}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _load_keys(self) -> set[FrameKey]:
        if not self._path.exists():
            return set()
        data = self._path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            dropped = len(data) - len(complete)
            log.warning("jsonl_scores_torn_line_dropped", path=str(self._path), bytes=dropped)
            os.truncate(self._path, len(complete))
        keys: set[FrameKey] = set()
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                keys.add(
                    (str(record["product_line"]), str(record["camera_id"]), str(record["frame_id"]))
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SinkError(
                    f"JSON-lines score sink: {self._path} line {number} is not a score record "
                    f"({exc}); move the file away or fix it"
                ) from exc
        return keys
