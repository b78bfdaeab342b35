"""Scores from the embedded JSON-lines file (``RDQC_SCORES=file://PATH``), as ``rdqc demo``
and a worker on the local backends write it, and shadow entries from ``shadow.jsonl`` beside it.

The file only grows, so the reader keeps the byte offset it has read up to and, on every call,
parses only what was appended since (complete lines; a line still being written waits for its
newline). What it keeps mirrors the Redis keys: per line the newest results (bounded like the
stream), each camera's latest by ``captured_at``, and the flagged frames. The writer already
keeps the first result of a frame only, so there is nothing to deduplicate here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from worker.dashboard.errors import BackendUnavailable
from worker.dashboard.ports import Tail
from worker.dashboard.records import NotAScore, Score
from worker.sinks.shadow_entry import ShadowEntry
from worker.sinks.shadow_jsonl import read_shadow_file, shadow_file_beside

_POLL_S = 0.25


class _Line:
    def __init__(self, keep: int, keep_flagged: int) -> None:
        self.scores: deque[Score] = deque(maxlen=keep)
        self.flagged: deque[Score] = deque(maxlen=keep_flagged)
        self.latest: dict[str, Score] = {}
        self.appended = 0  # results ever appended: the tail's cursor counts them

    def add(self, score: Score) -> None:
        self.scores.append(score)
        self.appended += 1
        if score.is_anomaly:
            self.flagged.append(score)
        shown = self.latest.get(score.camera_id)
        if shown is None or score.captured_at > shown.captured_at:
            self.latest[score.camera_id] = score


class JsonlScoreReader:
    def __init__(
        self,
        path: str | Path,
        *,
        keep: int = 100_000,
        keep_flagged: int = 10_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = Path(path)
        self._keep = keep
        self._keep_flagged = keep_flagged
        self._sleep = sleep
        self._lines: dict[str, _Line] = {}
        self._offset = 0
        self._lock = threading.Lock()

    def product_lines(self) -> list[str]:
        self._refresh()
        return sorted(self._lines)

    def latest(self, product_line: str) -> list[Score]:
        line = self._line(product_line)
        return sorted(line.latest.values(), key=lambda s: s.camera_id) if line else []

    def recent(self, product_line: str, limit: int) -> list[Score]:
        line = self._line(product_line)
        return list(line.scores)[-limit:] if line and limit > 0 else []

    def flagged(self, product_line: str, limit: int) -> list[Score]:
        line = self._line(product_line)
        return list(reversed(line.flagged))[:limit] if line else []

    def frame(self, product_line: str, camera_id: str, frame_id: str) -> Score | None:
        line = self._line(product_line)
        if line is None:
            return None
        for score in reversed(line.scores):
            if (score.camera_id, score.frame_id) == (camera_id, frame_id):
                return score
        return None

    def tail(self, product_line: str, cursor: str | None, wait_s: float) -> Tail:
        deadline = time.monotonic() + wait_s
        while True:
            line = self._line(product_line)
            appended = line.appended if line else 0
            start = appended if cursor is None else int(cursor)
            if appended > start or time.monotonic() >= deadline:
                new = list(line.scores)[-(appended - start) :] if line and appended > start else []
                return Tail(new, str(appended))
            cursor = str(start)
            self._sleep(_POLL_S)

    def shadow_entries(self, product_line: str, limit: int) -> list[ShadowEntry]:
        path = shadow_file_beside(self._path)
        if not path.is_file():
            return []
        try:
            return read_shadow_file(path, product_line).entries[-limit:]
        except OSError as exc:
            raise BackendUnavailable("scores", f"cannot read {path}: {exc}") from exc

    def ping(self) -> None:
        self._refresh()

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _line(self, product_line: str) -> _Line | None:
        self._refresh()
        return self._lines.get(product_line)

    def _refresh(self) -> None:
        with self._lock:
            try:
                with self._path.open("rb") as file:
                    if os.fstat(file.fileno()).st_size < self._offset:
                        # A new file in its place (``rdqc demo`` run again): start over.
                        self._lines, self._offset = {}, 0
                    file.seek(self._offset)
                    data = file.read()
            except FileNotFoundError:
                return  # no frame scored yet
            except OSError as exc:
                raise BackendUnavailable("scores", f"cannot read {self._path}: {exc}") from exc
            complete = data[: data.rfind(b"\n") + 1]
            self._offset += len(complete)
            for raw in complete.splitlines():
                self._add(raw)

    def _add(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
            score = Score.parse(record if isinstance(record, dict) else {})
        except (ValueError, NotAScore):
            return  # not a score record: skipped, as Redis readers skip foreign entries
        line = self._lines.get(score.product_line)
        if line is None:
            line = self._lines[score.product_line] = _Line(self._keep, self._keep_flagged)
        line.add(score)
