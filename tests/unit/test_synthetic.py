"""The synthetic product is reproducible by seed, and each defect is exactly where its mask says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdcore.data.images import read_image, read_mask
from rdcore.data.mvtec import MVTecLayout
from rdcore.data.synthetic import (
    DEFECT_KINDS,
    DefectKind,
    defective_image,
    good_image,
    write_image_folder,
    write_mvtec_layout,
)

SIZE = 64


def test_same_seed_gives_identical_images() -> None:
    first = good_image(np.random.default_rng(7), SIZE)
    again = good_image(np.random.default_rng(7), SIZE)
    other = good_image(np.random.default_rng(8), SIZE)
    assert first.shape == (SIZE, SIZE, 3)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_defect_changes_only_pixels_inside_its_mask(kind: DefectKind) -> None:
    seed = 3
    image, mask = defective_image(np.random.default_rng(seed), SIZE, kind)
    # The defective image is the good image of the same seed with the defect painted in.
    good = good_image(np.random.default_rng(seed), SIZE)
    changed = np.abs(image.astype(int) - good.astype(int)).max(axis=2) > 20
    assert mask.dtype == bool
    assert mask.sum() >= 0.01 * SIZE * SIZE
    assert not (changed & ~mask).any()
    assert changed[mask].mean() > 0.8


def test_defect_kind_is_random_when_not_given() -> None:
    rng = np.random.default_rng(0)
    masks = [defective_image(rng, SIZE)[1] for _ in range(6)]
    assert all(mask.any() for mask in masks)


def test_image_folder_is_reproducible(tmp_path: Path) -> None:
    first = write_image_folder(tmp_path / "a", count=3, seed=5, size=SIZE)
    again = write_image_folder(tmp_path / "b", count=3, seed=5, size=SIZE)
    assert [p.name for p in first] == ["good_000.png", "good_001.png", "good_002.png"]
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_mvtec_layout_has_a_mask_per_defective_image(tmp_path: Path) -> None:
    write_mvtec_layout(tmp_path, train_good=2, test_good=2, test_defect=1, seed=0, size=SIZE)
    layout = MVTecLayout(tmp_path)
    assert len(layout.train_good) == 2
    assert layout.defects == sorted(DEFECT_KINDS)
    for sample in layout.test:
        if sample.mask_path is not None:
            mask = read_mask(sample.mask_path)
            assert mask.shape == read_image(sample.path).shape[:2]
            assert mask.any()
