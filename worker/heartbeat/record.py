"""A worker's heartbeat record, the JSON every backend stores (docs/contracts.md §2).

Times are integer milliseconds since the Unix epoch (UTC), as elsewhere in the contracts; the
Python names say so (``last_seen_ms``), the JSON keeps the contract's (``last_seen``). A record
carries its own ``ttl_s``, so a reader needs no settings to tell a live worker from a gone one.
Unknown JSON keys are ignored, so fields can be added without breaking older readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.heartbeat.errors import HeartbeatError

SHORT_DIGEST = 12


class ModelVersion(BaseModel):
    """One model version: its name and its identity (``Manifest.digest()``, SHA-256 hex)."""

    model_config = ConfigDict(frozen=True)

    version: str
    digest: str

    @property
    def short_digest(self) -> str:
        return self.digest[:SHORT_DIGEST]


class LineModels(BaseModel):
    """What scores a product line on a worker: the live model, and a shadow candidate if any."""

    model_config = ConfigDict(frozen=True)

    live: ModelVersion
    shadow: ModelVersion | None = None


class Heartbeat(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    worker_id: str
    host: str
    pid: int
    started_at_ms: int = Field(alias="started_at")
    last_seen_ms: int = Field(alias="last_seen")
    interval_s: float
    ttl_s: float
    frames_scored: int
    frames_dead_lettered: int
    models: dict[str, LineModels] = Field(default_factory=dict)  # by product line

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Heartbeat:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise HeartbeatError(f"heartbeat {where} is not a heartbeat record: {exc}") from exc

    def expired(self, now_ms: int) -> bool:
        """Older than its ttl: the worker is gone, or silent long enough to count as gone."""
        return now_ms - self.last_seen_ms > self.ttl_s * 1000


def workers_by_version(
    heartbeats: Iterable[Heartbeat], role: Literal["live", "shadow"] = "live"
) -> dict[tuple[str, str], list[Heartbeat]]:
    """The workers running each (product_line, digest) as their live (or shadow) model."""
    grouped: dict[tuple[str, str], list[Heartbeat]] = {}
    for heartbeat in heartbeats:
        for line, models in heartbeat.models.items():
            model = models.live if role == "live" else models.shadow
            if model is not None:
                grouped.setdefault((line, model.digest), []).append(heartbeat)
    return grouped
