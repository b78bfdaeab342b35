"""A deterministic synthetic product: a perforated metal disc on a dark belt, with optional defects.

Good parts vary the way real captures do (position, lighting gradient, brightness, sensor noise) so
a model has to learn the part rather than one exact picture, but only mildly: a randomly
initialized teacher, as the CPU tests use, responds to lighting changes at the image border about
as strongly as to a small defect. Defects are deliberately large and high-contrast: tests and
``rdqc demo`` train for seconds, not hours, and must still separate them.
Everything is drawn from the numpy generator passed in, so one seed gives one image, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.data.images import RGBImage, encode_png

DefectKind = Literal["scratch", "spot", "missing"]
DEFECT_KINDS: tuple[DefectKind, ...] = ("scratch", "spot", "missing")

Mask = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float64]

_METAL = np.array([150.0, 156.0, 166.0])
_HOLE = np.array([70.0, 72.0, 78.0])
_RIM = np.array([110.0, 114.0, 122.0])
_SCRATCH = np.array([250.0, 248.0, 240.0])
_STAIN = np.array([45.0, 28.0, 16.0])
_NOISE_SIGMA = 3.0


@dataclass(frozen=True)
class _Scene:
    """A rendered good part plus what defects need to be drawn consistently on it."""

    image: FloatImage
    background: FloatImage
    ys: FloatImage
    xs: FloatImage
    center: tuple[float, float]
    radius: float

    def disc(self) -> Mask:
        return np.asarray(
            np.hypot(self.ys - self.center[0], self.xs - self.center[1]) < self.radius
        )


def _coverage(signed_distance: FloatImage) -> FloatImage:
    """Fraction of each pixel inside a shape, from the distance to its edge (antialiased edges)."""
    return np.clip(signed_distance + 0.5, 0.0, 1.0)


def _render_scene(rng: np.random.Generator, size: int) -> _Scene:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    jitter = 0.03 * size
    cy = size / 2 + rng.uniform(-jitter, jitter)
    cx = size / 2 + rng.uniform(-jitter, jitter)
    radius = 0.36 * size * rng.uniform(0.98, 1.02)

    # A belt-like background: dark, slightly tinted, with a vertical gradient.
    level = rng.uniform(46.0, 50.0)
    background = np.empty((size, size, 3))
    background[...] = level + 10.0 * (ys / size - 0.5)[..., None]
    background += np.array([0.0, 2.0, 6.0])

    distance = np.hypot(ys - cy, xs - cx)
    part = np.empty((size, size, 3))
    part[...] = _METAL
    rim = _coverage(np.minimum(radius - distance, distance - (radius - 0.06 * size)))
    part = part * (1 - rim[..., None]) + _RIM * rim[..., None]

    # A regular grid of holes that moves with the part, so position jitter shifts the pattern too.
    period = size / 8
    hole_radius = 0.22 * period
    dy = (ys - cy + period / 2) % period - period / 2
    dx = (xs - cx + period / 2) % period - period / 2
    hole = _coverage(hole_radius - np.hypot(dy, dx)) * (distance < radius - 0.5 * period)
    part = part * (1 - hole[..., None]) + _HOLE * hole[..., None]

    inside = _coverage(radius - distance)[..., None]
    image = background * (1 - inside) + part * inside

    angle = rng.uniform(0.0, 2 * np.pi)
    slope = rng.uniform(-0.04, 0.04)
    brightness = rng.uniform(0.97, 1.03)
    lighting = brightness * (1 + slope * ((xs * np.cos(angle) + ys * np.sin(angle)) / size - 0.5))
    image = image * lighting[..., None] + rng.normal(0.0, _NOISE_SIGMA, image.shape)
    background = background * lighting[..., None]
    return _Scene(image, background, ys, xs, (cy, cx), radius)


def _to_uint8(image: FloatImage) -> RGBImage:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def good_image(rng: np.random.Generator, size: int = 128) -> RGBImage:
    """An (size, size, 3) RGB image of a defect-free part."""
    return _to_uint8(_render_scene(rng, size).image)


def _point_in_disc(rng: np.random.Generator, scene: _Scene, fraction: float) -> tuple[float, float]:
    """A uniformly random point within ``fraction`` of the disc radius from its centre."""
    r = fraction * scene.radius * np.sqrt(rng.uniform())
    theta = rng.uniform(0.0, 2 * np.pi)
    return scene.center[0] + r * np.sin(theta), scene.center[1] + r * np.cos(theta)


def _scratch(rng: np.random.Generator, scene: _Scene, size: int) -> tuple[Mask, FloatImage]:
    y0, x0 = _point_in_disc(rng, scene, 0.5)
    angle = rng.uniform(0.0, np.pi)
    half = rng.uniform(0.5, 0.8) * scene.radius
    ay, ax = y0 - half * np.sin(angle), x0 - half * np.cos(angle)
    by, bx = y0 + half * np.sin(angle), x0 + half * np.cos(angle)
    # Distance of every pixel to the segment a-b.
    t = ((scene.ys - ay) * (by - ay) + (scene.xs - ax) * (bx - ax)) / ((2 * half) ** 2)
    t = np.clip(t, 0.0, 1.0)
    distance = np.hypot(scene.ys - (ay + t * (by - ay)), scene.xs - (ax + t * (bx - ax)))
    mask = (distance <= max(1.5, size / 24)) & scene.disc()
    return mask, np.broadcast_to(_SCRATCH, scene.image.shape)


def _spot(rng: np.random.Generator, scene: _Scene, size: int) -> tuple[Mask, FloatImage]:
    cy, cx = _point_in_disc(rng, scene, 0.6)
    ry, rx = rng.uniform(0.09, 0.13, size=2) * size
    mask = (((scene.ys - cy) / ry) ** 2 + ((scene.xs - cx) / rx) ** 2 <= 1.0) & scene.disc()
    return mask, np.broadcast_to(_STAIN, scene.image.shape)


def _missing(rng: np.random.Generator, scene: _Scene, size: int) -> tuple[Mask, FloatImage]:
    """A bite out of the rim: the belt shows through where metal should be."""
    theta = rng.uniform(0.0, 2 * np.pi)
    cy = scene.center[0] + scene.radius * np.sin(theta)
    cx = scene.center[1] + scene.radius * np.cos(theta)
    bite = rng.uniform(0.16, 0.21) * size
    mask = (np.hypot(scene.ys - cy, scene.xs - cx) < bite) & scene.disc()
    return mask, scene.background


_DEFECTS = {"scratch": _scratch, "spot": _spot, "missing": _missing}


def defective_image(
    rng: np.random.Generator, size: int = 128, kind: DefectKind | None = None
) -> tuple[RGBImage, Mask]:
    """A part with one defect (``kind``, or a random one) and the boolean mask of the defect.

    The part is drawn from ``rng`` exactly as ``good_image`` would draw it, then the defect replaces
    the pixels under its mask only, so the image differs from that good image nowhere else.
    """
    scene = _render_scene(rng, size)
    chosen: DefectKind = kind if kind is not None else DEFECT_KINDS[rng.integers(len(DEFECT_KINDS))]
    mask, fill = _DEFECTS[chosen](rng, scene, size)
    image = scene.image.copy()
    image[mask] = fill[mask] + rng.normal(0.0, _NOISE_SIGMA, (int(mask.sum()), 3))
    return _to_uint8(image), mask


def _write_png(path: Path, image: RGBImage) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))


def _write_mask(path: Path, mask: Mask) -> None:
    ok, buffer = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise RuntimeError(f"PNG encoding of {path} failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.tobytes())


def write_image_folder(folder: Path, count: int, seed: int, size: int = 128) -> list[Path]:
    """Write ``count`` good images as ``folder/good_000.png`` ... and return their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"good_{index:03d}.png"
        _write_png(path, good_image(rng, size))
        paths.append(path)
    return paths


def write_mvtec_layout(
    root: Path, *, train_good: int, test_good: int, test_defect: int, seed: int, size: int = 128
) -> None:
    """Write a data set in the MVTec AD layout; ``test_defect`` images per defect kind.

    ``train/good``, ``test/good``, ``test/<kind>`` and ``ground_truth/<kind>/<name>_mask.png``
    (0 or 255). Each split draws from its own stream of ``seed``, so changing one count does not
    change the images of another split.
    """
    train_rng, good_rng, defect_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    for index in range(train_good):
        _write_png(root / "train" / "good" / f"{index:03d}.png", good_image(train_rng, size))
    for index in range(test_good):
        _write_png(root / "test" / "good" / f"{index:03d}.png", good_image(good_rng, size))
    for kind in DEFECT_KINDS:
        for index in range(test_defect):
            image, mask = defective_image(defect_rng, size, kind)
            _write_png(root / "test" / kind / f"{index:03d}.png", image)
            _write_mask(root / "ground_truth" / kind / f"{index:03d}_mask.png", mask)
