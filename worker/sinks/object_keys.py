"""Object keys and file paths built from frame ids, which come from untrusted headers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from worker.frames import FrameMeta

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_SEGMENT = 120
# Short, but enough that two ids which sanitize alike practically never collide.
_DIGEST_CHARS = 10


def safe_segment(value: str) -> str:
    """One path segment that can't climb out of its prefix and is never empty or hidden.

    Characters outside ``[A-Za-z0-9._-]`` become ``_`` (so no ``/``), and a leading dot gets a
    ``_`` in front (so no ``.``, ``..`` or hidden names): ``../x`` becomes ``_.._x-<digest>``.
    Whenever the id had to change (or is cut to ``MAX_SEGMENT``), a digest of the original is
    appended, so ``a/b`` and ``a_b`` never share a heatmap.
    """
    safe = _UNSAFE.sub("_", value)
    if safe.startswith("."):
        safe = "_" + safe
    if safe == value and 0 < len(safe) <= MAX_SEGMENT:
        return safe
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    head = safe[: MAX_SEGMENT - _DIGEST_CHARS - 1] or "_"
    return f"{head}-{digest}"


def heatmap_key(meta: FrameMeta) -> str:
    """``{product_line}/{YYYY-MM-DD}/{camera_id}/{frame_id}.png``, the day in UTC (contract §3)."""
    day = datetime.fromtimestamp(meta.captured_at_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return "/".join(
        (
            safe_segment(meta.product_line),
            day,
            safe_segment(meta.camera_id),
            safe_segment(meta.frame_id) + ".png",
        )
    )
