"""Synthetic medical-like images: fast, deterministic, learnable, licence-free.

Each image shows a bright elliptical "organ" with smooth texture on a dark background,
one bright round "lesion" and one dark "cyst". The class is the *position* of the
lesion: class ``k`` puts it in the ``k``-th angular sector around the organ's centre.
Organ size, texture, brightness and contrast, lesion size and brightness and the cyst
are drawn independently of the class, so mean intensity says nothing about the label
while a small CNN (or even a linear model on pixels) learns it in a few hundred steps.

Only numpy is used; every split has its own generator spawned from ``seed``, so the
test set does not change when ``n_train`` does.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .base import ImageDataset, Split

__all__ = ["make_synthetic"]

_MAX_CLASSES = 12
_TINTS = np.array([1.0, 0.72, 0.85], dtype=np.float32)  # H&E-like pink for RGB


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation weights ``(n_out, n_in)`` that resample a coarse grid."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def disc_mask(yy: np.ndarray, xx: np.ndarray, cy: np.ndarray, cx: np.ndarray,
          radius: np.ndarray) -> np.ndarray:
    """Soft-edged discs ``(N, H, W)`` in ``[0, 1]``; centres and radii of shape (N,)."""
    dist = np.sqrt((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2)
    return 1.0 / (1.0 + np.exp(-2.0 * (radius[:, None, None] - dist)))


def _images(labels: np.ndarray, n_classes: int, size: int, n_channels: int, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    coords = np.arange(size, dtype=np.float32)
    yy, xx = coords[:, None], coords[None, :]
    c = (size - 1) / 2
    # organ: rotated ellipse with a soft rim
    cy, cx = c + u(-0.05, 0.05) * size, c + u(-0.05, 0.05) * size
    ay, ax, theta = u(0.30, 0.42) * size, u(0.26, 0.38) * size, u(-0.5, 0.5)
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    r = np.sqrt(((dy * cos + dx * sin) / ay[:, None, None]) ** 2
                + ((dx * cos - dy * sin) / ax[:, None, None]) ** 2)
    organ = 1.0 / (1.0 + np.exp(-12.0 * (1.0 - r)))
    # smooth texture: a coarse random grid, linearly upsampled
    grid = rng.uniform(-1, 1, (n, 5, 5)).astype(np.float32)
    interp = interp_matrix(size, 5)
    texture = interp @ grid @ interp.T
    img = 0.06 + organ * (u(0.40, 0.58)[:, None, None] + 0.08 * texture)
    # lesion: class k sits in angular sector k (jittered inside the sector)
    angle = 2 * math.pi * (labels + rng.uniform(0.2, 0.8, n)) / n_classes
    frac = u(0.40, 0.65)
    ly, lx = cy + frac * ay * np.sin(angle), cx + frac * ax * np.cos(angle)
    img += u(0.25, 0.40)[:, None, None] * disc_mask(yy, xx, ly, lx, u(0.06, 0.10) * size)
    # cyst: a dark spot anywhere in the organ, independent of the class
    angle2, frac2 = rng.uniform(0, 2 * math.pi, n), u(0.0, 0.6)
    ky, kx = cy + frac2 * ay * np.sin(angle2), cx + frac2 * ax * np.cos(angle2)
    img -= u(0.15, 0.30)[:, None, None] * organ * disc_mask(yy, xx, ky, kx, u(0.05, 0.09) * size)
    # acquisition: global gain, channels, noise
    img = img * u(0.8, 1.2)[:, None, None]
    img = img[:, None] * (_TINTS[:n_channels, None, None] if n_channels == 3 else 1.0)
    img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _split(n: int, n_classes: int, size: int, n_channels: int, noise: float,
           rng: np.random.Generator) -> Split:
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    return Split(_images(labels, n_classes, size, n_channels, noise, rng), labels)


def make_synthetic(
    n_train: int = 600,
    n_val: int = 100,
    n_test: int = 200,
    n_classes: int = 2,
    image_size: int = 28,
    n_channels: int = 1,
    seed: int = 0,
    noise: float = 0.05,
    name: str = "synthetic",
) -> ImageDataset:
    """Generate a small medical-like image classification dataset.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Number of images per split (each ``>= 1``).
    n_classes : int
        Number of classes, 2 to 12: class ``k`` places the lesion in angular sector
        ``k`` of the organ. Classes are balanced (counts differ by at most one).
    image_size : int
        Height and width in pixels (``>= 8``).
    n_channels : {1, 3}
        Grey images, or RGB with a histology-like tint.
    seed : int
        Seed (``>= 0``) of the dataset's own generator; same seed, same images.
    noise : float
        Standard deviation of additive Gaussian noise (``>= 0``; images are clipped to
        ``[0, 1]``).
    name : str
        Name of the returned dataset.

    Returns
    -------
    ImageDataset
        ``float32`` images ``(N, n_channels, image_size, image_size)`` in ``[0, 1]``
        and ``int64`` labels, licence ``"CC0 (generated)"``.
    """
    sizes = [check_int(k, v, 1) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    n_classes = check_int("n_classes", n_classes, 2, _MAX_CLASSES)
    image_size = check_int("image_size", image_size, 8)
    seed = check_int("seed", seed, 0)
    if n_channels not in (1, 3) or isinstance(n_channels, bool):
        raise ValueError(f"n_channels must be 1 or 3, got {n_channels!r}")
    if not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    train, val, test = (
        _split(n, n_classes, image_size, int(n_channels), float(noise), rng)
        for n, rng in zip(sizes, rngs, strict=True)
    )
    return ImageDataset(
        name=name, train=train, val=val, test=test,
        classes=tuple(f"lesion sector {k}" for k in range(n_classes)),
        license="CC0 (generated)", citation="Generated by fedlab.data.synthetic; no citation.",
        description=(
            "Synthetic medical-like images: a textured elliptical organ on a dark "
            "background with one bright lesion whose angular position is the class, plus a "
            "class-independent dark cyst, random gain and Gaussian noise."
        ),
        extra={"generator": "fedlab.data.synthetic.make_synthetic", "seed": seed,
               "noise": float(noise), "image_size": image_size},
    )
