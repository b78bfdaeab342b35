"""The video-file source: header contract, JPEG payloads, resume from the committed offset."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdcore.data.images import decode_image
from rdcore.errors import DatasetError
from worker.frames import TopicPartition
from worker.settings import Settings
from worker.sources.video import VideoFrameSource, video_source_from_url

pytestmark = pytest.mark.unit

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 10, 10.0
TP = TopicPartition("video", 0)


def _ignore(_: set[TopicPartition]) -> None:
    """No rebalance listener needed."""


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    for index in range(FRAMES):
        writer.write(np.full((HEIGHT, WIDTH, 3), index * 20, dtype=np.uint8))
    writer.release()
    return path


def _source(video: Path) -> VideoFrameSource:
    source = VideoFrameSource(video, product_line="widgets", camera_id="cam-07")
    assigned: list[set[TopicPartition]] = []
    source.setup(assigned.append, _ignore)
    assert assigned == [{TP}]
    return source


def test_records_follow_the_header_contract(video: Path) -> None:
    source = _source(video)
    records = source.poll(0.0, 4)
    assert [r.offset for r in records] == [0, 1, 2, 3]
    first = records[0]
    assert (first.topic, first.partition, first.key) == ("video", 0, b"cam-07")
    assert first.header("product_line") == "widgets"
    assert first.header("camera_id") == "cam-07"
    assert first.header("frame_id") == "cam-07-line-000000"
    assert first.header("content_type") == "image/jpeg"
    captured = [int(r.header("captured_at") or 0) for r in records]
    assert [later - captured[0] for later in captured] == [0, 100, 200, 300]  # 1 / fps apart
    assert decode_image(first.value, "frame 0").shape == (HEIGHT, WIDTH, 3)
    assert source.lag() == {TP: FRAMES - 4}
    source.close()


def test_resumes_at_the_committed_offset(video: Path) -> None:
    source = _source(video)
    assert len(source.poll(0.0, 6)) == 6
    source.commit({TP: 4})
    source.close()
    assert (video.parent / "line.avi.rdqc-offsets.json").is_file()

    resumed = _source(video)
    rest = resumed.poll(0.0, 100)
    assert [r.offset for r in rest] == list(range(4, FRAMES))
    assert rest[0].header("frame_id") == "cam-07-line-000004"
    assert resumed.lag() == {TP: 0}
    assert resumed.poll(0.01, 5) == []  # the end: nothing more, no error
    resumed.close()


def test_paused_source_hands_out_nothing(video: Path) -> None:
    source = _source(video)
    source.pause()
    assert source.poll(0.0, 5) == []
    source.resume()
    assert [r.offset for r in source.poll(0.0, 2)] == [0, 1]
    source.close()


def test_missing_video_is_named(tmp_path: Path) -> None:
    source = VideoFrameSource(tmp_path / "nope.mp4", product_line="p", camera_id="c")
    with pytest.raises(DatasetError, match=r"nope\.mp4"):
        source.setup(_ignore, _ignore)


def test_url_needs_a_product_line(video: Path) -> None:
    with pytest.raises(ValueError, match=r"video://.*line\.avi.*product_line"):
        video_source_from_url(f"{video}?camera_id=cam-02")
    source = video_source_from_url(f"{video}?product_line=widgets")
    source.setup(_ignore, _ignore)
    assert source.poll(0.0, 1)[0].header("camera_id") == "cam-01"
    source.close()


def test_settings_accept_a_video_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RDQC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .stack/stack.env of the checkout
    assert Settings(source="video:///x.mp4?product_line=p").dead_letters == "dir:///rejected"
    settings = Settings(source="video:///data/line.mp4?product_line=p&camera_id=a/b")
    assert settings.dead_letters == "dir:///data/rejected"
