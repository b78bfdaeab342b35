"""What every view and API route asks, answered from the sources as JSON-ready dicts.

The HTML views render these same dicts, so the JSON API (docs/dashboard.md) is exactly what the
pages show. Product lines and camera ids from the URL must be safe names (docs/contracts.md §1)
before they go into a key; frame ids are used as the contract allows them (any printable text).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from worker.dashboard.errors import BackendUnavailable, Component, NotFound
from worker.dashboard.heatmaps import heatmap_key
from worker.dashboard.line_stats import camera_statuses
from worker.dashboard.records import Score
from worker.dashboard.settings import DashboardSettings
from worker.dashboard.shadow_stats import shadow_glance
from worker.dashboard.sources import Sources
from worker.dashboard.thumbnails import ThumbnailCache, thumbnail

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHADOW_ENTRIES = 2000
THRESHOLD_SCORE = 0.5  # normalized scores put every model's threshold here (contracts §2)


def check_name(kind: str, value: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise NotFound(f"{kind} {value!r} is no safe name")
    return value


def frame_path(score: Score) -> str:
    """``{line}/{camera}/{frame_id}`` for URLs, the frame id percent-encoded whole."""
    return f"{score.product_line}/{score.camera_id}/{quote(score.frame_id, safe='')}"


def score_json(score: Score) -> dict[str, Any]:
    path = frame_path(score)
    links = {"frame_url": f"/frames/{path}", "api_url": f"/api/frames/{path}"}
    if score.heatmap_uri:
        links |= {
            "heatmap_url": f"/api/heatmaps/{path}",
            "thumbnail_url": f"/api/heatmaps/{path}?size=thumb",
        }
    return score.to_json() | links


class Queries:
    def __init__(
        self,
        sources: Sources,
        settings: DashboardSettings,
        *,
        clock: Callable[[], float] = time.time,
        thumbnails: ThumbnailCache | None = None,
    ) -> None:
        self.sources = sources
        self.settings = settings
        self._clock = clock
        self.thumbnails = thumbnails or ThumbnailCache()
        self._seen_lines: set[str] = set()
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def health(self) -> dict[str, Any]:
        checks: dict[Component, Callable[[], None]] = {
            "scores": self.sources.scores.ping,
            "heatmaps": self.sources.heatmaps.ping,
            "models": self.sources.models.ping,
        }
        components: dict[str, dict[str, Any]] = {}
        for name, check in checks.items():
            try:
                check()
                components[name] = {"ok": True, "error": None}
            except BackendUnavailable as exc:
                components[name] = {"ok": False, "error": exc.detail}
        ok = all(c["ok"] for c in components.values())
        return {"ok": ok, "components": components, "now": self.now_ms()}

    def product_lines(self) -> list[str]:
        """Lines in the model store, in the workers' heartbeats and (embedded) in the scores;
        once seen, a line stays listed while its sources are down."""
        found = set(self.sources.scores.product_lines())
        try:
            found.update(line.product_line for line in self.sources.models.lines())
        except BackendUnavailable:
            found.update(self.sources.models.known_lines())
        with contextlib.suppress(BackendUnavailable):
            found.update(line for w in self.sources.models.workers() for line in w.models)
        with self._lock:
            self._seen_lines.update(line for line in found if SAFE_NAME.fullmatch(line))
            return sorted(self._seen_lines)

    def overview(self) -> dict[str, Any]:
        versions = self._current_versions()
        lines = [
            {
                "product_line": line,
                "current_version": versions.get(line),
                "cameras": self._cameras(line)[0],
            }
            for line in self.product_lines()
        ]
        return {"now": self.now_ms(), **self._limits(), "lines": lines}

    def line(self, product_line: str) -> dict[str, Any]:
        check_name("product line", product_line)
        cameras, recent = self._cameras(product_line)
        return {
            "product_line": product_line,
            "now": self.now_ms(),
            **self._limits(),
            "threshold_score": THRESHOLD_SCORE,
            "current_version": self._current_versions().get(product_line),
            "cameras": cameras,
            "scores": [s.to_json() for s in recent[-self.settings.chart_points :]],
            "flagged": self.flagged(product_line, self.settings.gallery_size),
        }

    def flagged(self, product_line: str, limit: int) -> list[dict[str, Any]]:
        check_name("product line", product_line)
        return [score_json(s) for s in self.sources.scores.flagged(product_line, limit)]

    def scores(self, product_line: str, limit: int) -> list[dict[str, Any]]:
        check_name("product line", product_line)
        return [s.to_json() for s in self.sources.scores.recent(product_line, limit)]

    def frame(self, product_line: str, camera_id: str, frame_id: str) -> Score:
        check_name("product line", product_line)
        check_name("camera", camera_id)
        score = self.sources.scores.frame(product_line, camera_id, frame_id)
        if score is None:
            raise NotFound(f"no frame {product_line}/{camera_id}/{frame_id}")
        return score

    def heatmap(self, product_line: str, camera_id: str, frame_id: str, *, thumb: bool) -> bytes:
        score = self.frame(product_line, camera_id, frame_id)
        if not score.heatmap_uri:
            raise NotFound(f"frame {product_line}/{camera_id}/{frame_id} has no heatmap")
        key = heatmap_key(score.heatmap_uri)
        if not thumb:
            return self.sources.heatmaps.read(key)
        cached = self.thumbnails.get(key)
        if cached is None:
            cached = thumbnail(self.sources.heatmaps.read(key), self.thumbnails.width)
            self.thumbnails.put(key, cached)
        return cached

    def models(self) -> dict[str, Any]:
        lines = self.sources.models.lines()
        glances = []
        for line in lines:
            if line.shadow is None:
                continue
            entries = self.sources.scores.shadow_entries(line.product_line, _SHADOW_ENTRIES)
            glance = shadow_glance(line.product_line, entries)
            if glance is not None:
                glances.append(glance.to_json())
        return {"lines": [line.to_json() for line in lines], "shadow_tests": glances}

    def workers(self) -> dict[str, Any]:
        now_ms = self.now_ms()
        workers = []
        for heartbeat in self.sources.models.workers():
            record = heartbeat.model_dump(mode="json", by_alias=True)
            age_s = max(0, now_ms - heartbeat.last_seen_ms) / 1000
            workers.append(record | {"last_seen_age_s": age_s})
        return {
            "now": now_ms,
            "workers": workers,
            "frames_dead_lettered": sum(w["frames_dead_lettered"] for w in workers),
        }

    def _cameras(self, product_line: str) -> tuple[list[dict[str, Any]], list[Score]]:
        """Each camera's status, and the newest results they were computed from."""
        limit = self.settings.sample_limit
        latest = self.sources.scores.latest(product_line)
        recent = self.sources.scores.recent(product_line, limit)
        statuses = camera_statuses(
            latest,
            recent,
            now_ms=self.now_ms(),
            window_s=self.settings.window_s,
            sample_full=len(recent) >= limit,
            stale_after_s=self.settings.stale_after_s,
        )
        return [s.to_json() for s in statuses], recent

    def _current_versions(self) -> dict[str, str | None]:
        try:
            lines = self.sources.models.lines()
        except BackendUnavailable:
            return {}
        return {
            line.product_line: str(line.current["version"]) if line.current else None
            for line in lines
        }

    def _limits(self) -> dict[str, Any]:
        return {
            "window_s": self.settings.window_s,
            "stale_after_s": self.settings.stale_after_s,
        }
