"""Frames from one local video file: an embedded source that replays a recording, no broker.

URL: ``video://PATH?product_line=NAME&camera_id=ID`` (``camera_id`` defaults to ``cam-01``).
The video is one partition, ``video``/0, and a record's offset is its frame index. Each frame is
JPEG-encoded, so the pipeline decodes it like any camera payload, and carries the header
contract (docs/contracts.md §1): ``frame_id`` is ``{camera_id}-{video stem}-{index:06d}`` and
``captured_at`` the source's start time plus ``index / fps``.

``commit`` stores the next frame index in ``{PATH}.rdqc-offsets.json`` (rewritten atomically);
a restart resumes there, and frames handed out but not committed are read again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote

import cv2
import structlog

from rdcore.errors import DatasetError
from rdcore.files import fsync_directories, write_atomically
from worker.frames import SourceRecord, TopicPartition
from worker.ports import RebalanceCallback

log = structlog.get_logger(__name__)

TOPIC = "video"
OFFSETS_SUFFIX = ".rdqc-offsets.json"
DEFAULT_CAMERA_ID = "cam-01"
DEFAULT_FPS = 25.0
_TP = TopicPartition(TOPIC, 0)
_OFFSETS_FORMAT = 1
_URL_PARAMETERS = frozenset({"product_line", "camera_id"})


class VideoFrameSource:
    def __init__(
        self,
        path: str | Path,
        *,
        product_line: str,
        camera_id: str,
        offsets_path: str | Path | None = None,
        jpeg_quality: int = 90,
    ) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self._path = Path(path).resolve()
        self._offsets_path = (
            Path(offsets_path).resolve()
            if offsets_path is not None
            else self._path.with_name(self._path.name + OFFSETS_SUFFIX)
        )
        self._product_line = product_line
        self._camera_id = camera_id
        self._jpeg_quality = jpeg_quality
        self._capture: cv2.VideoCapture | None = None
        self._fps = DEFAULT_FPS
        self._frame_count: int | None = None
        self._next_index = 0
        self._started_ms = 0
        self._ended = False
        self._paused = False

    def setup(
        self,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Open the video and move to the committed frame; the partition is never taken away."""
        if not self._path.is_file():
            raise DatasetError(f"video {self._path} does not exist")
        offset = self._load_offset()
        self._capture = capture = self._open()
        fps = capture.get(cv2.CAP_PROP_FPS)
        # Some containers report 0 or NaN; the fallback only spaces captured_at plausibly.
        self._fps = fps if fps > 0 else DEFAULT_FPS
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self._frame_count = int(count) if count > 0 else None
        self._started_ms = time.time_ns() // 1_000_000
        self._skip_to(capture, offset)
        log.info(
            "video_source_opened",
            path=str(self._path),
            fps=self._fps,
            frames=self._frame_count,
            resume_at=self._next_index,
        )
        on_assigned({_TP})

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        records: list[SourceRecord] = []
        if not self._paused:
            while len(records) < max_records and (record := self._read()) is not None:
                records.append(record)
        if not records:
            # Paused or at the end: wait like a broker would, so the caller's loop does not spin.
            time.sleep(max(0.0, timeout_s))
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, next_offset in offsets.items():
            if tp != _TP:
                raise ValueError(f"commit for {tp}, which this video source never assigned")
            data = {"format": _OFFSETS_FORMAT, "next_offset": next_offset}
            write_atomically(self._offsets_path, (json.dumps(data) + "\n").encode("utf-8"))
            fsync_directories([self._offsets_path.parent])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Frame ``offset`` is read next; going back reopens the video and reads up to it."""
        if tp != _TP or self._capture is None:
            raise ValueError(f"seek on {tp}, which this video source has not assigned")
        if offset < self._next_index:
            self._capture.release()
            self._capture = self._open()
            self._next_index, self._ended = 0, False
        self._skip_to(self._capture, offset)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> set[TopicPartition]:
        return {_TP} if self._capture is not None else set()

    def lag(self) -> dict[TopicPartition, int]:
        """Frames not handed out yet; empty while the container does not say how many it has."""
        if self._capture is None:
            return {}
        if self._ended:
            return {_TP: 0}
        if self._frame_count is None:
            return {}
        return {_TP: max(0, self._frame_count - self._next_index)}

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _read(self) -> SourceRecord | None:
        if self._capture is None or self._ended:
            return None
        ok, frame = self._capture.read()
        if not ok:
            self._ended = True
            log.info("video_source_ended", path=str(self._path), frames=self._next_index)
            return None
        index = self._next_index
        self._next_index += 1
        encoded, buffer = cv2.imencode(
            ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality]
        )
        if not encoded:
            raise DatasetError(f"video {self._path}: frame {index} could not be JPEG-encoded")
        captured_at_ms = self._started_ms + round(index * 1000 / self._fps)
        headers = {
            "product_line": self._product_line,
            "camera_id": self._camera_id,
            "frame_id": f"{self._camera_id}-{self._path.stem}-{index:06d}",
            "captured_at": str(captured_at_ms),
            "content_type": "image/jpeg",
        }
        return SourceRecord(
            topic=TOPIC,
            partition=_TP.partition,
            offset=index,
            key=self._camera_id.encode("utf-8"),
            value=buffer.tobytes(),
            headers=tuple((key, value.encode("utf-8")) for key, value in headers.items()),
            timestamp_ms=captured_at_ms,
        )

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self._path))
        if not capture.isOpened():
            raise DatasetError(f"video {self._path} cannot be opened (not a format OpenCV reads)")
        return capture

    def _skip_to(self, capture: cv2.VideoCapture, offset: int) -> None:
        """Read and discard frames up to ``offset``.

        CAP_PROP_POS_FRAMES is not used: with inter-frame codecs the FFmpeg backend may land on
        a nearby keyframe, which would silently shift every later offset and frame_id.
        """
        while self._next_index < offset:
            if not capture.grab():
                self._ended = True
                log.warning(
                    "video_source_offset_past_end",
                    path=str(self._path),
                    offset=offset,
                    frames=self._next_index,
                )
                return
            self._next_index += 1

    def _load_offset(self) -> int:
        if not self._offsets_path.exists():
            return 0
        try:
            data = json.loads(self._offsets_path.read_text(encoding="utf-8"))
            if data.get("format") != _OFFSETS_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {_OFFSETS_FORMAT}")
            offset = data["next_offset"]
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise ValueError(f"next_offset {offset!r} is not a frame index")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{self._offsets_path} is not a progress file of this source ({exc}); delete it "
                "to score every frame again"
            ) from exc
        return offset


def video_source_from_url(location: str) -> VideoFrameSource:
    """The source for ``video://{location}``: ``PATH?product_line=NAME[&camera_id=ID]``."""
    url = f"video://{location}"
    raw_path, _, query = location.partition("?")
    path = unquote(raw_path)
    if not path:
        raise ValueError(f"{url!r}: no video path; expected video://PATH?product_line=NAME")
    parameters = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(parameters) - _URL_PARAMETERS)
    if unknown:
        raise ValueError(
            f"{url!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_URL_PARAMETERS))}"
        )
    product_line = parameters.get("product_line", [""])[-1]
    if not product_line:
        raise ValueError(f"{url!r}: product_line is required (video://PATH?product_line=NAME)")
    camera_id = parameters.get("camera_id", [DEFAULT_CAMERA_ID])[-1] or DEFAULT_CAMERA_ID
    return VideoFrameSource(path, product_line=product_line, camera_id=camera_id)
