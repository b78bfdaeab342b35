"""Frames from a local directory tree: the embedded default source, with no broker.

Layout: ``root/{product_line}/{camera_id}/*.{png,jpg,jpeg}``. Each product-line directory is one
partition of the topic ``dir`` (numbered in the order they are found); headers are derived from
the path, as a camera would send them (docs/contracts.md §1): ``frame_id`` is
``{product_line}-{camera_id}-{file stem}`` and ``captured_at`` the file's mtime.

The tree is listed again every ``poll_interval_s``. A file is handed out once its size and mtime
are unchanged between two listings, so a file still being written is not read half-way; a
writer that renames finished files into place (``x.png.part`` -> ``x.png``) is never seen early.
Hidden names (a leading dot) are ignored; anything else outside the layout is logged once.

Offsets are sequence numbers per partition in the order records are handed out. ``commit``
stores the names of the files below the committed offset in ``root/.rdqc-offsets.json``
(rewritten atomically), and a restart skips them; files handed out but not committed are read
again. Names of files deleted since are dropped from it at start.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from rdcore.files import fsync_directories, write_atomically
from worker.frames import SourceRecord, TopicPartition
from worker.ports import RebalanceCallback

log = structlog.get_logger(__name__)

TOPIC = "dir"
OFFSETS_FILE = ".rdqc-offsets.json"
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_OFFSETS_FORMAT = 1

# (size, mtime in ns): equal in two listings means the writer is done with the file.
_Signature = tuple[int, int]


@dataclass
class _Partition:
    product_line: str
    tp: TopicPartition
    ready: deque[str] = field(default_factory=deque)  # "{camera}/{file}", stable, not handed out
    in_flight: dict[int, str] = field(default_factory=dict)  # offset -> name, not committed
    known: set[str] = field(default_factory=set)  # the names in ready and in_flight
    next_offset: int = 0


class DirectoryFrameSource:
    def __init__(self, root: str | Path, poll_interval_s: float = 0.5) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self._root = Path(root).resolve()
        self._offsets_path = self._root / OFFSETS_FILE
        self._poll_interval_s = poll_interval_s
        self._partitions: dict[str, _Partition] = {}
        self._processed: dict[str, set[str]] = {}
        self._unsettled: dict[tuple[str, str], _Signature] = {}
        self._reported: set[Path] = set()
        self._paused = False
        self._next_scan = 0.0
        self._on_assigned: RebalanceCallback = lambda _: None

    def setup(
        self,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Check the root and load the progress; partitions are assigned as they are found.

        No partition is ever taken away: one lasts as long as the source.
        """
        if not self._root.is_dir():
            raise FileNotFoundError(f"frame directory {self._root} does not exist")
        self._on_assigned = on_assigned
        self._processed = self._load_processed()

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._paused and (records := self._take(max_records)):
                return records
            now = time.monotonic()
            if now >= self._next_scan:
                self._next_scan = now + self._poll_interval_s
                self._scan()
                continue
            if now >= deadline:
                return []
            time.sleep(min(deadline, self._next_scan) - now)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        by_tp = {part.tp: part for part in self._partitions.values()}
        for tp, next_offset in offsets.items():
            part = by_tp.get(tp)
            if part is None:
                raise ValueError(f"commit for {tp}, which this directory source never assigned")
            done = [offset for offset in part.in_flight if offset < next_offset]
            names = {part.in_flight.pop(offset) for offset in done}
            part.known -= names
            self._processed.setdefault(part.product_line, set()).update(names)
        self._save_processed()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Files handed out from ``offset`` on are handed out again, with the same offsets."""
        part = next((p for p in self._partitions.values() if p.tp == tp), None)
        if part is None or not min(part.in_flight, default=part.next_offset) <= offset:
            raise ValueError(f"seek on {tp} to {offset}: committed already, or never assigned")
        if offset > part.next_offset:
            raise ValueError(f"seek on {tp} to {offset}: past the next offset {part.next_offset}")
        again = [part.in_flight.pop(o) for o in sorted(part.in_flight) if o >= offset]
        part.ready.extendleft(reversed(again))
        part.next_offset = offset

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> set[TopicPartition]:
        return {part.tp for part in self._partitions.values()}

    def lag(self) -> dict[TopicPartition, int]:
        """Files found but not handed out yet, settled or not."""
        lag = {part.tp: len(part.ready) for part in self._partitions.values()}
        for product_line, _ in self._unsettled:
            tp = self._partitions[product_line].tp
            lag[tp] += 1
        return lag

    def close(self) -> None:
        """Nothing to release; progress is only what was committed."""

    def _take(self, max_records: int) -> list[SourceRecord]:
        """Up to ``max_records`` ready files, one partition after another in turn."""
        records: list[SourceRecord] = []
        while len(records) < max_records:
            ready = [part for part in self._partitions.values() if part.ready]
            if not ready:
                break
            for part in ready[: max_records - len(records)]:
                record = self._read(part, part.ready.popleft())
                if record is not None:
                    records.append(record)
        return records

    def _read(self, part: _Partition, name: str) -> SourceRecord | None:
        path = self._root / part.product_line / name
        try:
            stat = path.stat()
            payload = path.read_bytes()
        except OSError as exc:
            part.known.discard(name)
            log.warning("directory_frame_unreadable", path=str(path), error=str(exc))
            return None
        camera_id = path.parent.name
        captured_at_ms = stat.st_mtime_ns // 1_000_000
        headers = {
            "product_line": part.product_line,
            "camera_id": camera_id,
            "frame_id": f"{part.product_line}-{camera_id}-{path.stem}",
            "captured_at": str(captured_at_ms),
            "content_type": CONTENT_TYPES[path.suffix.lower()],
        }
        offset = part.next_offset
        part.next_offset += 1
        part.in_flight[offset] = name
        return SourceRecord(
            topic=TOPIC,
            partition=part.tp.partition,
            offset=offset,
            key=camera_id.encode("utf-8"),
            value=payload,
            headers=tuple((key, value.encode("utf-8")) for key, value in headers.items()),
            timestamp_ms=captured_at_ms,
        )

    def _scan(self) -> None:
        seen: dict[tuple[str, str], _Signature] = {}
        for product_line, name, signature in self._list():
            part = self._partition(product_line)
            if name in part.known or name in self._processed.get(product_line, ()):
                continue
            key = (product_line, name)
            if self._unsettled.get(key) == signature:
                part.ready.append(name)
                part.known.add(name)
            else:
                seen[key] = signature
        self._unsettled = seen

    def _partition(self, product_line: str) -> _Partition:
        part = self._partitions.get(product_line)
        if part is None:
            part = _Partition(product_line, TopicPartition(TOPIC, len(self._partitions)))
            self._partitions[product_line] = part
            log.info("directory_partition_assigned", product_line=product_line, tp=str(part.tp))
            self._on_assigned({part.tp})
        return part

    def _list(self) -> list[tuple[str, str, _Signature]]:
        """``(product_line, "{camera}/{file}", signature)`` of every image in the layout, sorted."""
        found: list[tuple[str, str, _Signature]] = []
        for line_dir in self._children(self._root, want_dirs=True):
            for camera_dir in self._children(line_dir, want_dirs=True):
                for path in self._children(camera_dir, want_dirs=False):
                    if path.suffix.lower() not in CONTENT_TYPES:
                        self._report(path, "not a .png, .jpg or .jpeg file")
                        continue
                    try:
                        stat = path.stat()
                    except FileNotFoundError:
                        continue
                    signature = (stat.st_size, stat.st_mtime_ns)
                    found.append((line_dir.name, f"{camera_dir.name}/{path.name}", signature))
        return found

    def _children(self, directory: Path, *, want_dirs: bool) -> list[Path]:
        """Visible entries of ``directory`` of the wanted kind; the others are reported."""
        try:
            entries = sorted(directory.iterdir())
        except FileNotFoundError:
            return []
        kept = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir() == want_dirs:
                kept.append(entry)
            else:
                kind = "directory" if entry.is_dir() else "file"
                self._report(entry, f"a {kind} outside root/{{product_line}}/{{camera_id}}/*.png")
        return kept

    def _report(self, path: Path, why: str) -> None:
        if path not in self._reported:
            self._reported.add(path)
            log.warning("directory_entry_skipped", path=str(path), reason=why)

    def _load_processed(self) -> dict[str, set[str]]:
        if not self._offsets_path.exists():
            return {}
        try:
            data = json.loads(self._offsets_path.read_text(encoding="utf-8"))
            if data.get("format") != _OFFSETS_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {_OFFSETS_FORMAT}")
            stored = data["processed"].items()
            processed = {str(line): {str(name) for name in names} for line, names in stored}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{self._offsets_path} is not a progress file of this source ({exc}); delete it "
                "to score every frame again"
            ) from exc
        # Names of deleted files would only make the file grow.
        return {
            line: {name for name in names if (self._root / line / name).is_file()}
            for line, names in processed.items()
        }

    def _save_processed(self) -> None:
        data = {
            "format": _OFFSETS_FORMAT,
            "processed": {line: sorted(names) for line, names in sorted(self._processed.items())},
        }
        write_atomically(self._offsets_path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
        fsync_directories([self._root])
