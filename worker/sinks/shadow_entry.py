"""One frame of a shadow test: the candidate's result beside the current model's.

The Redis stream ``{prefix}:shadow:{product_line}`` and the embedded ``shadow.jsonl`` carry the
same fields (docs/contracts.md §2), so a comparison needs nothing else. Unprefixed score fields
are the candidate's; the ``current_`` ones and ``model_version`` are the model whose verdict
counted, as in the scores stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.errors import WorkerError
from worker.frames import FrameMeta

JsonValue = str | int | float | bool

# The flat string fields in contract order; also the keys of the typed JSON form.
FIELDS = (
    "frame_id",
    "product_line",
    "camera_id",
    "captured_at",
    "scored_at",
    "candidate_version",
    "candidate_digest",
    "score",
    "raw_score",
    "threshold",
    "is_anomaly",
    "model_version",
    "current_score",
    "current_raw_score",
    "current_is_anomaly",
    "worker_id",
)


class ShadowEntryError(WorkerError, ValueError):
    """A stored shadow entry that lacks a field or holds a value of the wrong type."""


@dataclass(frozen=True)
class StoredEntries:
    """What a reader found: the entries, oldest first, and how many records it skipped."""

    entries: list[ShadowEntry]
    skipped: int  # records that are no shadow entry: a line torn by a crash, a foreign record


@dataclass(frozen=True)
class ShadowEntry:
    meta: FrameMeta
    scored_at_ms: int  # when the candidate scored it
    candidate_version: str
    candidate_digest: str  # Manifest.digest() of the candidate
    score: float  # the candidate's, normalized with its own calibration
    raw_score: float
    threshold: float
    is_anomaly: bool
    model_version: str  # the current model, whose verdict was written to the scores
    current_score: float
    current_raw_score: float
    current_is_anomaly: bool
    worker_id: str

    @property
    def frame_key(self) -> tuple[str, str, str]:
        """(product_line, camera_id, frame_id): what makes a frame unique (§2)."""
        return (self.meta.product_line, self.meta.camera_id, self.meta.frame_id)

    def fields(self) -> dict[str, str]:
        """The Redis stream entry: strings, floats with 6 decimals, verdicts ``0``/``1``."""
        typed = self.typed()
        return {
            name: (("1" if value else "0") if isinstance(value, bool) else _text(value))
            for name, value in typed.items()
        }

    def typed(self) -> dict[str, JsonValue]:
        """The JSON-lines record: numbers as numbers, verdicts as booleans."""
        values: dict[str, JsonValue] = {
            "frame_id": self.meta.frame_id,
            "product_line": self.meta.product_line,
            "camera_id": self.meta.camera_id,
            "captured_at": self.meta.captured_at_ms,
            "scored_at": self.scored_at_ms,
            "candidate_version": self.candidate_version,
            "candidate_digest": self.candidate_digest,
            "score": round(self.score, 6),
            "raw_score": round(self.raw_score, 6),
            "threshold": round(self.threshold, 6),
            "is_anomaly": self.is_anomaly,
            "model_version": self.model_version,
            "current_score": round(self.current_score, 6),
            "current_raw_score": round(self.current_raw_score, 6),
            "current_is_anomaly": self.current_is_anomaly,
            "worker_id": self.worker_id,
        }
        return {name: values[name] for name in FIELDS}

    @classmethod
    def parse(cls, record: Mapping[str, object], where: str) -> ShadowEntry:
        """An entry from a stream entry (all strings) or a JSON-lines record (typed)."""
        try:
            return cls(
                meta=FrameMeta(
                    frame_id=str(record["frame_id"]),
                    product_line=str(record["product_line"]),
                    camera_id=str(record["camera_id"]),
                    captured_at_ms=_integer(record["captured_at"]),
                ),
                scored_at_ms=_integer(record["scored_at"]),
                candidate_version=str(record["candidate_version"]),
                candidate_digest=str(record["candidate_digest"]),
                score=_number(record["score"]),
                raw_score=_number(record["raw_score"]),
                threshold=_number(record["threshold"]),
                is_anomaly=_verdict(record["is_anomaly"]),
                model_version=str(record["model_version"]),
                current_score=_number(record["current_score"]),
                current_raw_score=_number(record["current_raw_score"]),
                current_is_anomaly=_verdict(record["current_is_anomaly"]),
                worker_id=str(record.get("worker_id", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ShadowEntryError(f"{where} is not a shadow entry: {exc!r}") from exc


def _text(value: JsonValue) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _verdict(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("1", "0", 1, 0):
        return value in ("1", 1)
    raise ValueError(f"expected a verdict (true/false or 1/0), got {value!r}")
