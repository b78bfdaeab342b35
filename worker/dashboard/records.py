"""A frame's score record as the dashboard serves it, read from any of its stored forms.

The same fields in every form (docs/contracts.md §2): the Redis frame hash and stream entries
hold strings, ``latest`` values, events and the JSON-lines file hold typed JSON. A record that
lacks a field or holds a value of the wrong type is skipped by readers, never shown half-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


class NotAScore(ValueError):
    """A stored record that is no score record."""


@dataclass(frozen=True)
class Score:
    frame_id: str
    product_line: str
    camera_id: str
    score: float  # normalized: 0.5 is the threshold
    raw_score: float
    threshold: float
    is_anomaly: bool
    model_version: str
    captured_at: int  # ms since the epoch
    scored_at: int
    heatmap_uri: str
    worker_id: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, record: Mapping[Any, Any]) -> Score:
        """From a hash or stream entry (str or bytes values) or a typed JSON object."""
        fields = {_text(k): _text(v) if isinstance(v, bytes) else v for k, v in record.items()}
        try:
            return cls(
                frame_id=str(fields["frame_id"]),
                product_line=str(fields["product_line"]),
                camera_id=str(fields["camera_id"]),
                score=float(fields["score"]),
                raw_score=float(fields["raw_score"]),
                threshold=float(fields["threshold"]),
                is_anomaly=_verdict(fields["is_anomaly"]),
                model_version=str(fields["model_version"]),
                captured_at=int(fields["captured_at"]),
                scored_at=int(fields["scored_at"]),
                heatmap_uri=str(fields.get("heatmap_uri") or ""),
                worker_id=str(fields.get("worker_id") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NotAScore(f"not a score record: {exc!r}") from exc


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _verdict(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("1", "0", 1, 0):
        return value in ("1", 1)
    raise ValueError(f"is_anomaly {value!r} is neither 0/1 nor a boolean")
