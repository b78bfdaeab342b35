"""Hostile headers: each is rejected as the contract says, before anything is built from it.

Ids end up in Redis keys, object keys and file names, and capture times in dates; a value in the
wrong unit used to stop the worker when its heatmap key was built.
"""

from __future__ import annotations

import pytest
from hostile_inputs import DAY_MS, NOW_MS, Decoder, accepted, record, record_full_decodes

from worker.frames import FrameMeta, Rejection
from worker.sinks.object_keys import heatmap_key


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> Decoder:
    return record_full_decodes(monkeypatch)


def captured_at(value: str) -> dict[str, bytes]:
    return {"captured_at": value.encode()}


HEADERS = [
    pytest.param(captured_at(str(NOW_MS * 1000)), "looks like microseconds", id="captured-at-us"),
    pytest.param(captured_at(str(NOW_MS * 10**6)), "looks like nanoseconds", id="captured-at-ns"),
    pytest.param(captured_at(str(NOW_MS // 1000)), "looks like seconds", id="captured-at-s"),
    pytest.param(captured_at("-5"), "milliseconds since the Unix epoch", id="captured-at-neg"),
    pytest.param(captured_at("2026-12-02T10:00:00Z"), "not an integer", id="captured-at-text"),
    pytest.param(captured_at("١٧٩٥٠٠٠٠٠٠٠٠٠"), "not an integer", id="captured-at-arabic-digits"),
    pytest.param(captured_at(str(NOW_MS + 2 * DAY_MS)), "1 day after", id="captured-at-future"),
    pytest.param(captured_at("915148800000"), "2000-01-01", id="captured-at-1999"),
    pytest.param({"frame_id": b"f" * 2048}, "2048 bytes", id="oversized-frame-id"),
    pytest.param({"camera_id": b"c" * 129}, "not a safe name", id="camera-id-129-chars"),
    pytest.param({"content_type": b"image/" + b"x" * 95}, "100", id="long-content-type"),
    pytest.param({"camera_id": b"\xff\xfecam"}, "not UTF-8", id="non-utf8-camera"),
    pytest.param({"frame_id": b"\xed\xa0\x80"}, "not UTF-8", id="surrogate-frame-id"),
    pytest.param({"product_line": b"../../etc"}, "not a safe name", id="traversal-product"),
    pytest.param({"camera_id": b"../../etc"}, "not a safe name", id="traversal-camera"),
    pytest.param({"camera_id": b"cam/07"}, "not a safe name", id="slash-camera"),
    pytest.param({"frame_id": b"cam-07\n000123"}, "printable", id="newline-frame-id"),
    pytest.param({"frame_id": b"cam 07"}, "whitespace", id="space-frame-id"),
    pytest.param({"frame_id": b"cam\x0007"}, "printable", id="nul-frame-id"),
    pytest.param({"frame_id": "cam\u202e70".encode()}, "printable", id="bidi-frame-id"),
]


@pytest.mark.parametrize(("headers", "says"), HEADERS)
def test_hostile_headers(frames: Decoder, headers: dict[str, bytes], says: str) -> None:
    rejection = frames.decode(record(headers=headers))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "bad_header"
    assert says in rejection.message
    assert len(rejection.message) < 600  # a hostile value is quoted in short, never in full
    assert frames.calls == []


def test_a_record_timestamp_outside_the_window_is_refused_too(frames: Decoder) -> None:
    rejection = frames.decode(record(timestamp_ms=NOW_MS * 1000))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "bad_header"
    assert "record timestamp" in rejection.message
    assert "looks like microseconds" in rejection.message


def test_an_empty_captured_at_counts_as_absent(frames: Decoder) -> None:
    meta = accepted(frames.decode(record(headers=captured_at(" "), timestamp_ms=NOW_MS - 5)))
    assert meta.captured_at_ms == NOW_MS - 5  # the record timestamp


def test_missing_product_line(frames: Decoder) -> None:
    rejection = frames.decode(record(headers={"product_line": b" "}))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "missing_product_line"


def test_a_key_that_is_no_camera_id_gives_camera_unknown(frames: Decoder) -> None:
    for key in (b"../../etc", b"\xff\xfe", b"k" * 5000, b""):
        assert accepted(frames.decode(record(key=key))).camera_id == "unknown"


def test_a_traversing_frame_id_is_kept_but_cannot_leave_its_heatmap_prefix(
    frames: Decoder,
) -> None:
    meta = accepted(frames.decode(record(headers={"frame_id": b"../../etc"})))
    assert meta.frame_id == "../../etc"  # printable, so a valid id: Redis keys are binary-safe
    segments = heatmap_key(meta).split("/")
    assert len(segments) == 4
    assert segments[0] == "caps"
    assert not any(segment.startswith(".") for segment in segments)


def test_what_the_contract_allows_is_accepted(frames: Decoder) -> None:
    headers = {
        "frame_id": "カメラ:3:41".encode(),  # any printable characters, ':' included
        "captured_at": f" {NOW_MS + DAY_MS} ".encode(),  # surrounding blanks, as before
        "traceparent": b"\xff" * 10_000,  # not a contract header: neither decoded nor limited
    }
    meta = accepted(frames.decode(record(headers=headers)))
    assert (meta.frame_id, meta.captured_at_ms) == ("カメラ:3:41", NOW_MS + DAY_MS)


@pytest.mark.parametrize(
    ("captured_at_ms", "day"),
    [
        (NOW_MS * 1000, "9999-12-31"),
        (10**30, "9999-12-31"),
        (-(10**30), "0001-01-01"),
        (-1, "1969-12-31"),
        (NOW_MS, "2026-11-18"),
    ],
)
def test_heatmap_keys_clamp_any_capture_time_instead_of_raising(
    captured_at_ms: int, day: str
) -> None:
    meta = FrameMeta("f-1", "caps", "cam-7", captured_at_ms)
    assert heatmap_key(meta) == f"caps/{day}/cam-7/f-1.png"
    assert heatmap_key(meta) == heatmap_key(meta)  # one key per frame: redelivery overwrites
