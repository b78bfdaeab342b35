"""The MVTec AD test layout: good and defective test images, and their ground-truth masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rdcore.data.images import list_images, read_mask
from rdcore.errors import DatasetError

GOOD = "good"


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
