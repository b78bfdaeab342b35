"""Data sets on disk: folders of good images for training, and the MVTec AD test layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from torch import Tensor
from torch.utils.data import Dataset

from rdcore.errors import DatasetError
from rdcore.images import list_images, read_image, read_mask
from rdcore.preprocess import Preprocess

GOOD = "good"


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


@dataclass(frozen=True)
class MVTecSample:
    """One test image: ``defect`` is its folder name ('good' for normal images)."""

    path: Path
    defect: str
    mask_path: Path | None

    @property
    def is_anomalous(self) -> bool:
        return self.defect != GOOD


class MVTecLayout:
    """An MVTec AD style category folder.

    ``train/good/*``, ``test/good/*`` (normal), ``test/<defect>/*`` (anomalous) with the mask of
    each anomalous image in ``ground_truth/<defect>/<stem>_mask.png``. Discovery checks that every
    mask exists, so a broken data set fails before any scoring starts.
    """

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DatasetError(f"{root}: data set folder does not exist")
        self.root = root
        train_folder = root / "train" / GOOD
        self.train_good = list_images(train_folder) if train_folder.is_dir() else []
        test_folder = root / "test"
        if not test_folder.is_dir():
            raise DatasetError(f"{test_folder}: no test folder (expected test/good, test/<defect>)")
        self.test = [
            sample
            for folder in sorted(p for p in test_folder.iterdir() if p.is_dir())
            for sample in self._samples(folder)
        ]
        if not self.test:
            raise DatasetError(f"{test_folder}: no test images in its subfolders")

    @property
    def defects(self) -> list[str]:
        return sorted({s.defect for s in self.test if s.is_anomalous})

    def _samples(self, folder: Path) -> list[MVTecSample]:
        defect = folder.name
        if defect == GOOD:
            return [MVTecSample(path, GOOD, None) for path in list_images(folder)]
        samples = []
        for path in list_images(folder):
            mask_path = self.root / "ground_truth" / defect / f"{path.stem}_mask.png"
            if not mask_path.is_file():
                raise DatasetError(f"{mask_path}: ground-truth mask of {path} is missing")
            samples.append(MVTecSample(path, defect, mask_path))
        return samples


def load_mask(sample: MVTecSample, image_shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """The sample's boolean mask at its image's (H, W); all False for a normal image."""
    height, width = image_shape[:2]
    if sample.mask_path is None:
        return np.zeros((height, width), dtype=bool)
    mask = read_mask(sample.mask_path)
    if mask.shape != (height, width):
        raise DatasetError(
            f"{sample.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{sample.path} is {width}x{height}"
        )
    return mask
