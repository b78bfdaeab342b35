"""Intake control: how many records the next poll may take, and pausing the source when none.

Two budgets bound what is in flight (polled and not done): ``max_queue`` frames, and
``max_inflight_bytes`` of payloads, decoded images and model inputs. Bytes are known per frame
only once it is decoded, so room for new frames is projected from the largest frames decoded
lately: frames still decoding count as that large, and each new frame too. Until the first
frame is decoded its size is unknown, so frames are taken one at a time. With nothing in
flight one frame is always admitted, so a single frame larger than the budget cannot deadlock.

A paused source keeps its partitions and keeps serving rebalances; polls just return nothing, so
memory stays bounded and a struggling sink is not handed more work.
"""

from __future__ import annotations

from collections import deque

from worker.ports import FrameSource

_SIZE_WINDOW = 64  # decoded frames the size estimate remembers


class Intake:
    """Called by the pipeline's loop thread only."""

    def __init__(self, max_frames: int, max_bytes: int, max_poll_records: int) -> None:
        if min(max_frames, max_bytes, max_poll_records) < 1:
            raise ValueError(
                "need max_frames, max_bytes and max_poll_records >= 1, got "
                f"{max_frames}, {max_bytes}, {max_poll_records}"
            )
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._max_poll_records = max_poll_records
        self._sizes: deque[tuple[int, int]] = deque(maxlen=_SIZE_WINDOW)  # (payload, decoded)

    def decoded(self, payload_bytes: int, decoded_bytes: int) -> None:
        """A frame was decoded: what it holds now besides its payload."""
        self._sizes.append((payload_bytes, decoded_bytes))

    def sizing(self) -> bool:
        """No frame was decoded yet, so how large frames are is unknown."""
        return not self._sizes

    def room(self, frames: int, held_bytes: int, decoding: int) -> int:
        """Records the next poll may take; 0 when the intake is full.

        ``frames`` in flight hold ``held_bytes``; ``decoding`` of them are not decoded yet.
        """
        by_count = self._max_frames - frames
        if self._sizes:
            decoded = max(d for _, d in self._sizes)
            per_frame = max(p + d for p, d in self._sizes)
            projected = held_bytes + decoding * decoded
            by_bytes = (self._max_bytes - projected) // max(1, per_frame)
        else:
            by_bytes = 0 if decoding else 1
        room = min(by_count, by_bytes, self._max_poll_records)
        return max(room, 1 if frames == 0 else 0)


class Pausing:
    """Called by the pipeline's loop thread only: it calls the source."""

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._paused = False

    def pause(self) -> None:
        """A sink just failed: stop intake at once, not at the next ``update``."""
        self._set(True)

    def update(self, intake_full: bool, backing_off: bool) -> None:
        """Paused exactly while the intake is full or a sink flush waits for its retry."""
        self._set(intake_full or backing_off)

    def _set(self, paused: bool) -> None:
        if paused != self._paused:
            (self._source.pause if paused else self._source.resume)()
            self._paused = paused
