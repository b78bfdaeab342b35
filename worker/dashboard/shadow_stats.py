"""A shadow test at a glance: the newest candidate against the live model on recent frames.

A short form of ``rdqc models compare`` for the models page (that command stays the full
report): each frame counts once per candidate version, its first entry winning as in the
scores (docs/contracts.md §2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from worker.sinks.shadow_entry import ShadowEntry


@dataclass(frozen=True)
class ShadowGlance:
    product_line: str
    candidate_version: str
    frames: int
    agreement: float  # share of frames both models judged alike
    current_flag_rate: float
    candidate_flag_rate: float
    mean_score_shift: float  # candidate minus current, normalized scores

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shadow_glance(product_line: str, entries: list[ShadowEntry]) -> ShadowGlance | None:
    """From entries oldest first; None when there are none."""
    if not entries:
        return None
    candidate = entries[-1].candidate_version
    first: dict[tuple[str, str, str], ShadowEntry] = {}
    for entry in entries:
        if entry.candidate_version == candidate:
            first.setdefault(entry.frame_key, entry)
    frames = list(first.values())
    count = len(frames)
    return ShadowGlance(
        product_line=product_line,
        candidate_version=candidate,
        frames=count,
        agreement=sum(e.is_anomaly == e.current_is_anomaly for e in frames) / count,
        current_flag_rate=sum(e.current_is_anomaly for e in frames) / count,
        candidate_flag_rate=sum(e.is_anomaly for e in frames) / count,
        mean_score_shift=round(sum(e.score - e.current_score for e in frames) / count, 6),
    )
