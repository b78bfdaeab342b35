"""SourceRecord.frame_id_or_position: the frame id, or where the record sits when it has none."""

from __future__ import annotations

import pytest

from worker.frames import SourceRecord


def record(*headers: tuple[str, bytes]) -> SourceRecord:
    return SourceRecord("frames.inbound", 2, 41, None, b"x", headers)


def test_the_frame_id_header_wins() -> None:
    assert record(("frame_id", b"cam-1-000123")).frame_id_or_position(":") == "cam-1-000123"


@pytest.mark.parametrize("headers", [(), (("frame_id", b""),)], ids=["absent", "empty"])
def test_without_a_frame_id_the_position_with_the_separator(
    headers: tuple[tuple[str, bytes], ...],
) -> None:
    assert record(*headers).frame_id_or_position(":") == "frames.inbound:2:41"
    assert record(*headers).frame_id_or_position("-") == "frames.inbound-2-41"


def test_a_frame_id_that_is_not_utf8_falls_back_unless_strict() -> None:
    binary = record(("frame_id", b"\xff\xfe"))
    assert binary.frame_id_or_position(":") == "frames.inbound:2:41"
    with pytest.raises(UnicodeDecodeError):
        binary.frame_id_or_position(":", strict=True)
