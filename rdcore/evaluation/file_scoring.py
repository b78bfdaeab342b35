"""Scoring image files in batches: one code path for evaluation, calibration and ``rdqc score``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from rdcore.data.images import RGBImage, read_image
from rdcore.data.preprocess import Preprocess
from rdcore.device import resolve_device
from rdcore.nn.model import ReverseDistillation

FloatArray = npt.NDArray[np.float32]


class ScoredBatch(NamedTuple):
    """Raw scores (B,) and anomaly maps (B, S, S) at the model's image size, with the originals."""

    paths: list[Path]
    images: list[RGBImage]
    scores: FloatArray
    maps: FloatArray


def score_batches(
    model: ReverseDistillation,
    preprocess: Preprocess,
    paths: Sequence[Path],
    *,
    batch_size: int,
    device: str | torch.device,
) -> Iterator[ScoredBatch]:
    """Score ``paths`` in eval mode, ``batch_size`` at a time, holding one batch in memory."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    target = resolve_device(device) if isinstance(device, str) else device
    model.eval().to(target)
    for start in range(0, len(paths), batch_size):
        chunk = list(paths[start : start + batch_size])
        images = [read_image(path) for path in chunk]
        with torch.inference_mode():
            prediction = model(preprocess.batch(images).to(target))
        yield ScoredBatch(
            chunk,
            images,
            prediction.score.float().cpu().numpy(),
            prediction.anomaly_map.float().cpu().numpy(),
        )


def score_images(
    model: ReverseDistillation,
    preprocess: Preprocess,
    paths: Sequence[Path],
    *,
    batch_size: int,
    device: str | torch.device,
) -> tuple[FloatArray, FloatArray]:
    """Raw scores (N,) and anomaly maps (N, S, S) of every image in ``paths``."""
    size = preprocess.image_size
    scores = np.empty(len(paths), dtype=np.float32)
    maps = np.empty((len(paths), size, size), dtype=np.float32)
    offset = 0
    for batch in score_batches(model, preprocess, paths, batch_size=batch_size, device=device):
        end = offset + len(batch.paths)
        scores[offset:end] = batch.scores
        maps[offset:end] = batch.maps
        offset = end
    return scores, maps
