"""Folders of good images for training: listing, a dataset over image paths, the holdout split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from rdcore.data.images import list_images, read_image
from rdcore.data.preprocess import Preprocess
from rdcore.errors import DatasetError


def folder_images(folder: Path) -> list[Path]:
    """The images directly in ``folder``; a DatasetError naming it if it is missing or has none."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder does not exist")
    paths = list_images(folder)
    if not paths:
        raise DatasetError(f"{folder}: no images (.jpg, .jpeg, .png, .bmp) in this folder")
    return paths


class ImagePathsDataset(Dataset[Tensor]):
    """Preprocessed images, one file each; an unreadable file raises ImageReadError naming it."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        return self.preprocess(read_image(self.paths[index]))


class ImageFolderDataset(ImagePathsDataset):
    """Every image directly in ``folder`` (grayscale and color alike become 3-channel RGB)."""

    def __init__(self, folder: Path, preprocess: Preprocess) -> None:
        super().__init__(folder_images(folder), preprocess)
        self.folder = folder


def split_holdout(
    paths: Sequence[Path], fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Split into (train, holdout), holding out ``fraction`` (at least one image when > 0).

    The holdout calibrates the threshold on good images the model never trained on; scores of
    training images are optimistically low. Both parts are returned sorted, whatever the seed.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return sorted(paths), []
    if len(paths) < 2:
        where = f"{paths[0].parent}: " if paths else ""
        raise DatasetError(
            f"{where}need at least 2 good images to hold some out for calibration, got {len(paths)}"
        )
    count = min(len(paths) - 1, max(1, round(fraction * len(paths))))
    order = np.random.default_rng(seed).permutation(len(paths))
    holdout = {int(i) for i in order[:count]}
    train = [p for i, p in enumerate(paths) if i not in holdout]
    held = [p for i, p in enumerate(paths) if i in holdout]
    return sorted(train), sorted(held)
