"""Intake: how many records a poll may take under the frame and byte budgets."""

from __future__ import annotations

import pytest

from worker.pipeline.pausing import Intake

pytestmark = pytest.mark.unit


def test_until_a_frame_is_decoded_frames_are_taken_one_at_a_time() -> None:
    intake = Intake(max_frames=100, max_bytes=10_000, max_poll_records=50)
    assert intake.sizing()
    assert intake.room(frames=0, held_bytes=0, decoding=0) == 1
    assert intake.room(frames=1, held_bytes=100, decoding=1) == 0
    # Rejected before decoding (say, an empty payload): still nothing known, one more.
    assert intake.room(frames=1, held_bytes=100, decoding=0) == 1


def test_room_is_what_fits_at_the_size_of_the_largest_frames_lately() -> None:
    intake = Intake(max_frames=100, max_bytes=10_000, max_poll_records=50)
    intake.decoded(payload_bytes=100, decoded_bytes=400)
    intake.decoded(payload_bytes=100, decoded_bytes=900)  # frames are 1000 bytes at most
    assert not intake.sizing()
    assert intake.room(frames=0, held_bytes=0, decoding=0) == 10
    assert intake.room(frames=5, held_bytes=5_000, decoding=0) == 5
    # Frames still decoding hold only their payload yet, but will hold 900 bytes more.
    assert intake.room(frames=2, held_bytes=200, decoding=2) == 8
    assert intake.room(frames=10, held_bytes=10_000, decoding=0) == 0


def test_the_frame_count_and_the_poll_size_bound_it_too() -> None:
    intake = Intake(max_frames=4, max_bytes=1 << 30, max_poll_records=3)
    intake.decoded(10, 10)
    assert intake.room(frames=0, held_bytes=0, decoding=0) == 3
    assert intake.room(frames=2, held_bytes=40, decoding=0) == 2
    assert intake.room(frames=4, held_bytes=80, decoding=0) == 0


def test_a_frame_larger_than_the_budget_is_admitted_alone() -> None:
    intake = Intake(max_frames=100, max_bytes=1_000, max_poll_records=50)
    intake.decoded(payload_bytes=5_000, decoded_bytes=50_000)
    assert intake.room(frames=0, held_bytes=0, decoding=0) == 1
    assert intake.room(frames=1, held_bytes=55_000, decoding=0) == 0


def test_the_size_estimate_forgets_old_frames() -> None:
    intake = Intake(max_frames=1000, max_bytes=100_000, max_poll_records=1000)
    intake.decoded(0, 10_000)
    assert intake.room(0, 0, 0) == 10
    for _ in range(64):
        intake.decoded(0, 1_000)
    assert intake.room(0, 0, 0) == 100


def test_budgets_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Intake(max_frames=1, max_bytes=0, max_poll_records=1)
