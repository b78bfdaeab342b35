"""Gallery thumbnails: heatmap PNGs scaled down once on the server, then served from memory.

A full heatmap is the frame at its original size (often megapixels); fifty of them scaled by the
browser would cost seconds. OpenCV shrinks each with area interpolation and encodes a JPEG, and
an LRU bounded in bytes keeps the results: a heatmap's key names one frame, whose heatmap is
only ever rewritten with the same content's redelivery, so entries never go stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np

from worker.dashboard.errors import NotFound

_JPEG_QUALITY = 82


def thumbnail(png: bytes, width: int) -> bytes:
    """A JPEG ``width`` pixels wide (never enlarged), aspect kept. NotFound if undecodable."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise NotFound("the heatmap is no decodable image")
    height, original_width = image.shape[:2]
    if original_width > width:
        size = (width, max(1, round(height * width / original_width)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise NotFound("the heatmap could not be encoded as a thumbnail")
    return bytes(jpeg.tobytes())


class ThumbnailCache:
    """Thumbnails by heatmap key, least recently used evicted past ``max_bytes``."""

    def __init__(self, width: int = 240, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.width = width
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= len(old) if old else 0
            self._entries[key] = data
            self._bytes += len(data)
            while self._bytes > self._max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._entries)
