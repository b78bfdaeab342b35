"""What the dashboard reads, behind two small ports: scores (with shadow entries) and heatmaps.

Backends: Redis (``redis_scores``) or the embedded JSON-lines file (``jsonl_scores``) for
scores; object storage or a folder (``heatmaps``) for heatmaps. Every method may raise
BackendUnavailable; none writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.dashboard.records import Score
from worker.sinks.shadow_entry import ShadowEntry


@dataclass(frozen=True)
class Tail:
    """Scores appended after a cursor, oldest first, and the cursor to continue from."""

    scores: list[Score]
    cursor: str


class ScoreReader(Protocol):
    def product_lines(self) -> list[str]:
        """Lines the scores reveal without walking every key (Redis: none; a file: all)."""

    def latest(self, product_line: str) -> list[Score]:
        """Each camera's most recent result."""

    def recent(self, product_line: str, limit: int) -> list[Score]:
        """The line's newest ``limit`` results, oldest first."""

    def flagged(self, product_line: str, limit: int) -> list[Score]:
        """The newest ``limit`` flagged frames, newest first."""

    def frame(self, product_line: str, camera_id: str, frame_id: str) -> Score | None: ...

    def tail(self, product_line: str, cursor: str | None, wait_s: float) -> Tail:
        """Results appended after ``cursor`` (None: from now on), waiting up to ``wait_s``
        for the first one."""

    def shadow_entries(self, product_line: str, limit: int) -> list[ShadowEntry]:
        """The newest ``limit`` shadow-test entries of the line, oldest first."""

    def ping(self) -> None:
        """Raise BackendUnavailable unless the store answers."""

    def close(self) -> None: ...


class HeatmapReader(Protocol):
    def read(self, key: str) -> bytes:
        """The PNG at ``{product_line}/{day}/{camera_id}/{frame_id}.png`` (docs/contracts.md §3).
        Raises NotFound or BackendUnavailable."""

    def ping(self) -> None:
        """Raise BackendUnavailable unless the store answers."""
