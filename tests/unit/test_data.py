"""Data sets fail early with errors that name the folder or file at fault."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdcore.config import ModelConfig
from rdcore.data.folders import ImageFolderDataset, split_holdout
from rdcore.data.mvtec import MVTecLayout, load_mask
from rdcore.data.preprocess import Preprocess
from rdcore.data.synthetic import write_mvtec_layout
from rdcore.errors import DatasetError, ImageReadError

PREPROCESS = Preprocess.from_config(ModelConfig(backbone="resnet18", image_size=32))


def test_missing_folder_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "no-such-folder"
    with pytest.raises(DatasetError, match="no-such-folder"):
        ImageFolderDataset(folder, PREPROCESS)


def test_folder_without_images_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path))):
        ImageFolderDataset(tmp_path, PREPROCESS)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    dataset = ImageFolderDataset(tmp_path, PREPROCESS)
    with pytest.raises(ImageReadError, match=re.escape(str(broken))):
        dataset[0]


def test_grayscale_and_color_images_become_three_channels(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((40, 50), 128, dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "color.jpg"), np.full((20, 20, 3), 200, dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "color.bmp"), np.full((20, 20, 3), 10, dtype=np.uint8))
    dataset = ImageFolderDataset(tmp_path, PREPROCESS)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        assert dataset[index].shape == (3, 32, 32)


def test_holdout_split_is_disjoint_reproducible_and_complete() -> None:
    paths = [Path(f"{i:02d}.png") for i in range(20)]
    train, holdout = split_holdout(paths, 0.1, seed=3)
    assert len(holdout) == 2
    assert sorted(train + holdout) == paths
    assert split_holdout(paths, 0.1, seed=3) == (train, holdout)
    assert split_holdout(paths, 0.0, seed=3) == (paths, [])
    # Any positive fraction holds out at least one image, and never all of them.
    assert len(split_holdout(paths[:2], 0.01, seed=0)[1]) == 1
    assert len(split_holdout(paths[:2], 0.9, seed=0)[0]) == 1


def test_mvtec_discovery(tmp_path: Path) -> None:
    write_mvtec_layout(tmp_path, train_good=3, test_good=2, test_defect=2, seed=0, size=32)
    layout = MVTecLayout(tmp_path)
    assert len(layout.train_good) == 3
    good = [s for s in layout.test if not s.is_anomalous]
    defective = [s for s in layout.test if s.is_anomalous]
    assert len(good) == 2
    assert all(s.mask_path is None for s in good)
    assert len(defective) == 2 * len(layout.defects)
    for sample in defective:
        assert sample.mask_path == (
            tmp_path / "ground_truth" / sample.defect / f"{sample.path.stem}_mask.png"
        )
    assert not load_mask(good[0], (32, 32)).any()


def test_missing_mask_is_named(tmp_path: Path) -> None:
    write_mvtec_layout(tmp_path, train_good=0, test_good=1, test_defect=1, seed=0, size=32)
    mask = tmp_path / "ground_truth" / "spot" / "000_mask.png"
    mask.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(mask))):
        MVTecLayout(tmp_path)


def test_mask_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    write_mvtec_layout(tmp_path, train_good=0, test_good=1, test_defect=1, seed=0, size=32)
    mask = tmp_path / "ground_truth" / "scratch" / "000_mask.png"
    cv2.imwrite(str(mask), np.zeros((16, 16), dtype=np.uint8))
    sample = next(s for s in MVTecLayout(tmp_path).test if s.defect == "scratch")
    with pytest.raises(DatasetError, match=re.escape(str(mask))):
        load_mask(sample, (32, 32, 3))


def test_layout_without_test_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="test"):
        MVTecLayout(tmp_path)
