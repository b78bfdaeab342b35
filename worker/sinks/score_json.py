"""The typed JSON form of a result: Redis ``latest`` values and events, and JSON-lines records."""

from __future__ import annotations

import json

from worker.frames import FrameResult

JsonValue = str | int | float | bool


def typed_fields(result: FrameResult) -> dict[str, JsonValue]:
    """The contract's fields with numbers as numbers and ``is_anomaly`` a bool.

    Floats are rounded to the 6 decimals of the Redis hash, so every sink shows the same value.
    """
    return {
        "frame_id": result.meta.frame_id,
        "product_line": result.meta.product_line,
        "camera_id": result.meta.camera_id,
        "score": round(result.score, 6),
        "raw_score": round(result.raw_score, 6),
        "threshold": round(result.threshold, 6),
        "is_anomaly": result.is_anomaly,
        "model_version": result.model_version,
        "captured_at": result.meta.captured_at_ms,
        "scored_at": result.scored_at_ms,
        "heatmap_uri": result.heatmap_uri,
        "worker_id": result.worker_id,
    }


def result_json(result: FrameResult) -> str:
    return json.dumps(typed_fields(result), separators=(",", ":"))
