"""Object keys and file paths built from frame ids, which come from untrusted headers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from worker.frames import FrameMeta

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_SEGMENT = 120
# Short, but enough that two ids which sanitize alike practically never collide.
_DIGEST_CHARS = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# The days a datetime can name. The frame decoder refuses capture times outside its window, but a
# key is built on the loop thread, where an exception would stop the worker: out of range is
# clamped to the nearest end instead, still one fixed key per frame.
_FIRST_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MS
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MS


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
    """``{product_line}/{YYYY-MM-DD}/{camera_id}/{frame_id}.png``, the day in UTC (contract §3).

    Never raises: a capture time beyond year 1 or 9999 takes that end's first or last day.
    """
    clamped_ms = min(max(meta.captured_at_ms, _FIRST_MS), _LAST_MS)
    day = (_EPOCH + clamped_ms * _MS).date().isoformat()
    return "/".join(
        (
            safe_segment(meta.product_line),
            day,
            safe_segment(meta.camera_id),
            safe_segment(meta.frame_id) + ".png",
        )
    )
