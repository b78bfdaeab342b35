"""Heartbeats as files, for the embedded mode (scores in a local JSON-lines file).

One JSON file per worker in a ``workers/`` folder beside the scores file, named after the worker
id (made a safe file name). Each write replaces the file atomically, so a reader never sees a
torn record; without fsync, since a heartbeat that a crash loses is stale by then anyway.
Files do not expire by themselves: a record whose ``last_seen`` is older than its ttl is gone
for every reader, and each write deletes such files, so a killed worker's file does not stay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from rdcore.files import write_atomically
from worker.heartbeat.errors import HeartbeatError
from worker.heartbeat.record import Heartbeat
from worker.sinks.object_keys import safe_segment

log = structlog.get_logger(__name__)

FOLDER = "workers"


def heartbeat_folder(scores_file: str | Path) -> Path:
    """``./scores.jsonl`` -> ``./workers``."""
    return Path(scores_file).parent / FOLDER


class FileHeartbeatStore:
    def __init__(self, folder: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._folder = Path(folder)
        self._clock = clock

    def path(self, worker_id: str) -> Path:
        return self._folder / f"{safe_segment(worker_id)}.json"

    def write(self, heartbeat: Heartbeat) -> None:
        data = heartbeat.to_json().encode("utf-8")
        try:
            write_atomically(self.path(heartbeat.worker_id), data, fsync=False)
            self._delete_expired()
        except OSError as exc:
            raise HeartbeatError(f"file heartbeat store: {self._folder}: {exc}") from exc

    def remove(self, worker_id: str) -> None:
        try:
            self.path(worker_id).unlink(missing_ok=True)
        except OSError as exc:
            raise HeartbeatError(f"file heartbeat store: cannot remove: {exc}") from exc

    def live(self) -> list[Heartbeat]:
        """Workers whose record is younger than its ttl; an unreadable file is logged, skipped."""
        now_ms = self._now_ms()
        return [h for _, h in self._records(log_skipped=True) if not h.expired(now_ms)]

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    def _records(self, log_skipped: bool) -> list[tuple[Path, Heartbeat]]:
        # The temp files of atomic writes start with a dot and end in .tmp: not matched.
        records = []
        for path in sorted(self._folder.glob("*.json")):
            try:
                records.append((path, Heartbeat.from_json(path.read_bytes(), str(path))))
            except FileNotFoundError:
                continue  # removed since the folder was listed
            except (OSError, HeartbeatError) as exc:
                if log_skipped:  # not on every write: a stray file would flood the log
                    log.warning("heartbeat skipped", path=str(path), error=str(exc))
        return records

    def _delete_expired(self) -> None:
        now_ms = self._now_ms()
        for path, heartbeat in self._records(log_skipped=False):
            if heartbeat.expired(now_ms):
                path.unlink(missing_ok=True)
                log.info("expired heartbeat deleted", worker_id=heartbeat.worker_id)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
