"""Seek on the local sources: records from the offset are handed out again, same offsets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from worker.frames import SourceRecord, TopicPartition
from worker.sources.directory import DirectoryFrameSource
from worker.sources.video import VideoFrameSource

pytestmark = pytest.mark.unit


def _ignore(_: set[TopicPartition]) -> None:
    """No rebalance listener needed."""


def poll_all(source: DirectoryFrameSource, count: int) -> list[SourceRecord]:
    """The directory source hands a file out once it is unchanged between two listings."""
    records: list[SourceRecord] = []
    for _ in range(20):
        records += source.poll(0.01, count - len(records))
        if len(records) >= count:
            break
    return records


def test_video_seek_back_reads_the_same_frames_again(tmp_path: Path) -> None:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (32, 24))
    for index in range(6):
        writer.write(np.full((24, 32, 3), index * 40, dtype=np.uint8))
    writer.release()
    source = VideoFrameSource(path, product_line="widgets", camera_id="cam-1")
    source.setup(_ignore, _ignore)
    first = source.poll(0.0, 6)

    source.seek(TopicPartition("video", 0), 2)
    again = source.poll(0.0, 6)

    assert [r.offset for r in again] == [2, 3, 4, 5]
    assert [r.header("frame_id") for r in again] == [r.header("frame_id") for r in first[2:]]
    with pytest.raises(ValueError, match="not assigned"):
        source.seek(TopicPartition("video", 1), 0)
    source.close()


def test_directory_seek_hands_out_uncommitted_files_again(tmp_path: Path) -> None:
    camera = tmp_path / "caps" / "cam-1"
    camera.mkdir(parents=True)
    for index in range(4):
        _, png = cv2.imencode(".png", np.full((16, 16, 3), index, dtype=np.uint8))
        (camera / f"{index}.png").write_bytes(png.tobytes())
    source = DirectoryFrameSource(tmp_path, poll_interval_s=0.01)
    source.setup(_ignore, _ignore)
    first = poll_all(source, 4)
    tp = first[0].tp
    source.commit({tp: 1})

    source.seek(tp, 2)
    again = poll_all(source, 2)

    assert [(r.offset, r.header("frame_id")) for r in again] == [
        (r.offset, r.header("frame_id")) for r in first[2:]
    ]
    with pytest.raises(ValueError, match="committed already"):
        source.seek(tp, 0)
    with pytest.raises(ValueError, match="past the next offset"):
        source.seek(tp, 9)
