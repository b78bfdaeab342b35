"""Dead letters to a local directory: ``root/{reason}/{name}.bin`` plus ``{name}.json`` beside it.

The ``.bin`` file is the original payload, untouched; the JSON sidecar holds why it was rejected,
where it came from and the original key and headers. ``{name}`` is the frame id when the record
has a readable one (so a redelivered rejection overwrites its files), else
``{topic}-{partition}-{offset}``; either is sanitized. The payload is written before the sidecar,
so a sidecar always has its payload.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from rdcore.files import directories_up_to, fsync_directories, write_atomically
from worker.errors import SinkError
from worker.frames import Rejection, SourceRecord
from worker.sinks.object_keys import safe_segment


def _bytes_field(data: bytes) -> dict[str, str]:
    """Bytes as JSON: readable text when it is UTF-8, else base64."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _name_for(record: SourceRecord) -> str:
    return safe_segment(record.frame_id_or_position("-"))


class DirectoryDeadLetterSink:
    def __init__(self, root: str | Path, worker_id: str = "") -> None:
        self._root = Path(root).resolve()
        self._worker_id = worker_id
        self._pending: list[Rejection] = []

    def setup(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(
                f"directory dead-letter sink: cannot create {self._root}: {exc}"
            ) from exc

    def add(self, rejection: Rejection) -> None:
        self._pending.append(rejection)

    def flush(self) -> None:
        written: set[Path] = set()
        for rejection in self._pending:
            directory = self._root / rejection.reason
            name = _name_for(rejection.record)
            try:
                write_atomically(directory / f"{name}.bin", rejection.record.value)
                write_atomically(directory / f"{name}.json", self._sidecar(rejection, name))
            except OSError as exc:
                raise SinkError(
                    f"directory dead-letter sink: cannot write {directory / name}: {exc}"
                ) from exc
            written.update(directories_up_to(directory / name, self._root))
        try:
            fsync_directories(written)
        except OSError as exc:
            raise SinkError(
                f"directory dead-letter sink: cannot fsync {self._root}: {exc}"
            ) from exc
        self._pending = []

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _sidecar(self, rejection: Rejection, name: str) -> bytes:
        record = rejection.record
        sidecar = {
            "reason": rejection.reason,
            "error_class": rejection.error_class,
            "message": rejection.message,
            "worker_id": self._worker_id,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
            },
            "key": None if record.key is None else _bytes_field(record.key),
            "headers": [
                {"name": header, **_bytes_field(value)} for header, value in record.headers
            ],
            "payload_file": f"{name}.bin",
            "payload_bytes": len(record.value),
        }
        return (json.dumps(sidecar, indent=2) + "\n").encode("utf-8")
