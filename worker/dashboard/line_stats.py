"""Per-camera figures of a product line: live score, flag rate and frames/s over a recent
window, last frame time and whether the camera has gone quiet.

The window is measured on the line's newest results (a bounded read of the stream's end). When
that read is full before the window is, the rates are over the time it covers instead, which
the ``window_s`` of each camera says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from worker.dashboard.records import Score


@dataclass(frozen=True)
class CameraStatus:
    camera_id: str
    latest: Score
    window_frames: int
    window_s: float
    flag_rate: float | None  # flagged share of the window's frames; None without frames
    frames_per_s: float
    last_frame_age_s: float  # since the latest frame's captured_at
    stale: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"latest": self.latest.to_json()}


def camera_statuses(
    latest: list[Score],
    recent: list[Score],
    *,
    now_ms: int,
    window_s: float,
    sample_full: bool,
    stale_after_s: float,
) -> list[CameraStatus]:
    """``recent``: the line's newest results, oldest first; ``sample_full``: the read of them
    hit its limit, so older frames of the window may be missing."""
    since_ms = now_ms - window_s * 1000
    in_window = [s for s in recent if s.captured_at >= since_ms]
    statuses = []
    for shown in sorted(latest, key=lambda s: s.camera_id):
        frames = [s for s in in_window if s.camera_id == shown.camera_id]
        span_s = window_s
        if sample_full and in_window:
            span_s = max(0.001, (now_ms - in_window[0].captured_at) / 1000)
        age_s = max(0.0, (now_ms - shown.captured_at) / 1000)
        statuses.append(
            CameraStatus(
                camera_id=shown.camera_id,
                latest=shown,
                window_frames=len(frames),
                window_s=round(span_s, 3),
                flag_rate=sum(s.is_anomaly for s in frames) / len(frames) if frames else None,
                frames_per_s=round(len(frames) / span_s, 3),
                last_frame_age_s=round(age_s, 3),
                stale=age_s > stale_after_s,
            )
        )
    return statuses
