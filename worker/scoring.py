"""Scoring a batch of frames of one product line with its model, and rendering heatmaps.

Preprocessing (resize + normalize, ~3 ms for a 1280x960 frame on one core) would keep the GPU
idle if it ran here for a whole batch, so the pipeline preprocesses on its decode threads with
the preprocessing of the model it last used for the product line (``Prepared``). A model swap
may change it; ``score`` redoes any frame whose preprocessing is not the batch's model's, so a
batch is always scored with one model object, start to end.

``score_each`` keeps one bad frame from failing its whole batch: when the batch raises, its
frames are scored one at a time and each failure is returned in its frame's place.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import structlog
import torch
from torch import Tensor, nn

from rdcore.artifacts.artifact import LoadedModel
from rdcore.calibration import normalize
from rdcore.data.images import encode_png
from rdcore.data.overlay import heatmap_overlay, heatmap_range
from rdcore.data.preprocess import Preprocess
from rdcore.device import autocast_dtype, resolve_device
from rdcore.nn.model import AnomalyPrediction
from worker.frames import DecodedFrame

Precision = Literal["fp32", "bf16", "fp16"]
HeatmapsFor = Literal["flagged", "all", "none"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A decoded frame, with its model input when its product line's preprocessing was known."""

    frame: DecodedFrame
    tensor: Tensor | None = None
    preprocess: Preprocess | None = None

    @property
    def product_line(self) -> str:
        return self.frame.meta.product_line


@dataclass(frozen=True)
class Scored:
    frame: DecodedFrame
    raw_score: float
    score: float  # normalized: 0.5 at the threshold
    is_anomaly: bool
    threshold: float
    model_version: str
    # The colour scale of the model's heatmaps (rdcore.data.overlay.heatmap_range).
    heatmap_range: tuple[float, float]
    # The model-resolution anomaly map on the CPU, only when a heatmap is wanted.
    anomaly_map: npt.NDArray[np.float32] | None = None


class BatchScorer:
    """Runs on the pipeline's single inference thread."""

    def __init__(
        self,
        device: str | torch.device,
        precision: Precision = "fp32",
        channels_last: bool = True,
        heatmaps_for: HeatmapsFor = "flagged",
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.heatmaps_for = heatmaps_for
        self._channels_last = channels_last
        self._autocast_dtype = autocast_dtype(self.device, precision)
        self._prepared_models: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    def score(self, frames: Sequence[Prepared], loaded: LoadedModel) -> list[Scored]:
        if not frames:
            return []
        calibration = loaded.calibration
        model = self._on_device(loaded.model)
        batch = torch.stack([self._input(item, loaded.preprocess) for item in frames])
        if self.device.type == "cuda":
            batch = batch.pin_memory()  # lets the copy below overlap with the host
        batch = batch.to(self.device, non_blocking=True)
        if self._channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            prediction = model(batch)
        raw, maps = self._to_host(prediction)
        normalized = normalize(raw, calibration)
        threshold = calibration.threshold
        colour_range = heatmap_range(calibration)
        results = []
        for i, item in enumerate(frames):
            is_anomaly = bool(raw[i] >= threshold)
            wanted = self.heatmaps_for == "all" or (self.heatmaps_for == "flagged" and is_anomaly)
            results.append(
                Scored(
                    frame=item.frame,
                    raw_score=float(raw[i]),
                    score=float(normalized[i]),
                    is_anomaly=is_anomaly,
                    threshold=threshold,
                    model_version=loaded.version,
                    heatmap_range=colour_range,
                    anomaly_map=maps[i] if wanted and maps is not None else None,
                )
            )
        return results

    def score_each(
        self, frames: Sequence[Prepared], loaded: LoadedModel
    ) -> list[Scored | Exception]:
        """Per frame, its result or the error that scoring it alone raised.

        CUDA running out of memory is treated like any other error, once the allocator's
        cache is emptied: one frame needs a fraction of a batch's memory, so the frames mostly
        succeed one at a time. A frame that runs out of memory even alone is reported like any
        other failure (class OutOfMemoryError): exiting instead would only start a crash loop,
        since the redelivered frame needs the same memory in the next worker.
        """
        try:
            return list(self.score(frames, loaded))
        except Exception as exc:
            out_of_memory = isinstance(exc, torch.cuda.OutOfMemoryError)
            log.warning(
                "batch scoring failed; scoring its frames one at a time",
                product_line=loaded.manifest.product_line,
                size=len(frames),
                error_class=type(exc).__name__,
                error=str(exc),
            )
        if out_of_memory:
            # Only now, with the exception and its traceback gone, are the failed batch's
            # tensors free to be handed back.
            torch.cuda.empty_cache()
        results: list[Scored | Exception] = []
        for item in frames:
            try:
                results.append(self.score([item], loaded)[0])
            except Exception as exc:
                # Without its traceback, the error holds no tensors while it waits to be written.
                results.append(exc.with_traceback(None))
        return results

    def _on_device(self, model: nn.Module) -> nn.Module:
        """Once per model object: on this device, and in channels-last layout if enabled."""
        if model not in self._prepared_models:
            model.to(self.device)
            if self._channels_last:
                model.to(memory_format=torch.channels_last)
            self._prepared_models.add(model)
        return model

    @staticmethod
    def _input(item: Prepared, preprocess: Preprocess) -> Tensor:
        if item.tensor is not None and item.preprocess == preprocess:
            return item.tensor
        return preprocess(item.frame.image)

    def _autocast(self) -> AbstractContextManager[object]:
        if self._autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)

    def _to_host(
        self, prediction: AnomalyPrediction
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Scores and (if heatmaps may be wanted) maps, in one device-to-host copy per batch."""
        scores = prediction.score.float().unsqueeze(1)
        if self.heatmaps_for == "none":
            return scores.cpu().numpy()[:, 0], None
        size = prediction.anomaly_map.shape[1:]
        host = torch.cat([scores, prediction.anomaly_map.float().flatten(1)], dim=1).cpu().numpy()
        return host[:, 0], host[:, 1:].reshape(-1, *size)


def render_heatmap(scored: Scored) -> bytes:
    """The PNG of the frame with its anomaly map blended over it, at the frame's size."""
    if scored.anomaly_map is None:
        raise ValueError(f"frame {scored.frame.meta.frame_id} was scored without its anomaly map")
    overlay = heatmap_overlay(scored.frame.image, scored.anomaly_map, *scored.heatmap_range)
    return encode_png(overlay)
