"""Synthetic medical-like images with masks, and their split into sites.

Each image shows a textured elliptical "organ" on a dark background, zero to two bright
round "lesions" inside it and one dark "cyst" (a distractor that belongs to the organ).
The mask gives every pixel a class: 0 background, 1 organ, 2 lesion. Image and mask
come from the same soft shapes: a pixel is organ (lesion) in the mask exactly when the
organ's (a lesion's) soft edge is above one half, so the mask follows the image's edges.
About one image in five has no lesion, so empty lesion masks occur as they do in
practice.

Sites differ by acquisition (gain, contrast, noise, blur, resolution: the scanners of
:mod:`fedlab.data.shift`), never by their masks. Only numpy is used by the generator;
each split has its own generator spawned from ``seed``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split
from .partition import check_sites
from .shift import AcquisitionShift
from .synthetic import check_int, disc_mask, interp_matrix

__all__ = ["make_segmentation", "split_segmentation", "SEGMENTATION_CLASSES"]

SEGMENTATION_CLASSES = ("background", "organ", "lesion")
_LESIONS = (0.2, 0.5, 0.3)  # probabilities of 0, 1 and 2 lesions per image


def _organ(size: int, n: int, rng: np.random.Generator):
    """Soft organ ``(N, H, W)``, its centre and half-axes (ellipse angle included)."""
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    coords = np.arange(size, dtype=np.float32)
    yy, xx = coords[:, None], coords[None, :]
    c = (size - 1) / 2
    cy, cx = c + u(-0.06, 0.06) * size, c + u(-0.06, 0.06) * size
    ay, ax, theta = u(0.28, 0.42) * size, u(0.24, 0.38) * size, u(-0.6, 0.6)
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    r = np.sqrt(((dy * cos + dx * sin) / ay[:, None, None]) ** 2
                + ((dx * cos - dy * sin) / ax[:, None, None]) ** 2)
    return 1.0 / (1.0 + np.exp(-12.0 * (1.0 - r))), (yy, xx, cy, cx, ay, ax, theta)


def _spot(geometry, rng: np.random.Generator, reach: float, radius: tuple[float, float],
          size: int) -> np.ndarray:
    """A soft disc ``(N, H, W)`` inside the organ: at a random angle, up to ``reach`` of
    the way from the centre to the rim (in the ellipse's own, rotated, axes)."""
    yy, xx, cy, cx, ay, ax, theta = geometry
    n = len(cy)
    angle = rng.uniform(0, 2 * math.pi, n)
    frac = rng.uniform(0.0, reach, n)
    u, v = frac * ay * np.sin(angle), frac * ax * np.cos(angle)
    sy, sx = cy + u * np.cos(theta) - v * np.sin(theta), cx + u * np.sin(theta) + v * np.cos(theta)
    return disc_mask(yy, xx, sy, sx, rng.uniform(*radius, n) * size)


def _images_and_masks(n: int, size: int, noise: float, rng: np.random.Generator):
    organ, geometry = _organ(size, n, rng)
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)[:, None, None]  # noqa: E731
    grid = rng.uniform(-1, 1, (n, 5, 5)).astype(np.float32)
    interp = interp_matrix(size, 5)
    img = 0.06 + organ * (u(0.35, 0.50) + 0.08 * (interp @ grid @ interp.T))
    mask = (organ > 0.5).astype(np.int64)
    n_lesions = rng.choice(len(_LESIONS), size=n, p=_LESIONS)
    lesion = np.zeros_like(organ)
    for k in range(len(_LESIONS) - 1):
        spot = _spot(geometry, rng, 0.55, (0.06, 0.11), size) * (n_lesions > k)[:, None, None]
        lesion = np.maximum(lesion, spot)
    cyst = _spot(geometry, rng, 0.6, (0.05, 0.08), size) * (1.0 - lesion)
    img = img + u(0.28, 0.42) * lesion - u(0.15, 0.25) * organ * cyst
    mask[(lesion > 0.5) & (organ > 0.5)] = 2
    img = img * u(0.85, 1.15)
    img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)[:, None], mask


def make_segmentation(n_train: int = 300, n_val: int = 50, n_test: int = 100,
                      image_size: int = 48, seed: int = 0, noise: float = 0.04,
                      name: str = "synthetic-segmentation") -> ImageDataset:
    """Generate a small 2-D segmentation dataset (organ and lesions, with masks).

    Parameters
    ----------
    n_train, n_val, n_test : int
        Number of images per split (each ``>= 1``).
    image_size : int
        Height and width in pixels, a multiple of 4 and ``>= 16`` (so a UNet with two
        down-samplings fits).
    seed : int
        Seed (``>= 0``) of the dataset's own generator; same seed, same images and masks.
    noise : float
        Standard deviation of additive Gaussian noise (``>= 0``).
    name : str
        Name of the returned dataset.

    Returns
    -------
    ImageDataset
        ``float32`` images ``(N, 1, S, S)`` in ``[0, 1]`` and ``int64`` masks ``(N, S, S)``
        with classes ``("background", "organ", "lesion")``.
    """
    sizes = [check_int(k, v, 1) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    image_size = check_int("image_size", image_size, 16)
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
    seed = check_int("seed", seed, 0)
    if not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    train, val, test = (Split(*_images_and_masks(n, image_size, float(noise), rng))
                        for n, rng in zip(sizes, rngs, strict=True))
    return ImageDataset(
        name=name, train=train, val=val, test=test, classes=SEGMENTATION_CLASSES,
        license="CC0 (generated)",
        citation="Generated by fedlab.data.segmentation; no citation.",
        description=("Synthetic medical-like images with masks: a textured elliptical organ "
                     "(class 1) with zero to two bright lesions (class 2) and a dark cyst "
                     "(organ tissue) on a dark background (class 0)."),
        extra={"generator": "fedlab.data.segmentation.make_segmentation", "seed": seed,
               "noise": float(noise), "image_size": image_size, "task": "segmentation"},
    )


def _cut(n: int, fractions: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of ``range(n)`` into parts of the given fractions."""
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    return [np.sort(p) for p in np.split(rng.permutation(n), bounds[:-1])]


def split_segmentation(data: ImageDataset, n_sites: int, seed: int = 0,
                       names: list[str] | None = None,
                       weights: Sequence[float] | None = None,
                       shift: AcquisitionShift | None = None) -> Federation:
    """Split a segmentation dataset into sites, each imaging through its own scanner.

    Images go to sites at random (there are no per-image classes to skew by), in
    proportions ``weights`` (equal by default), in each of train / val / test. Then each
    site's images pass through the scanner that ``shift`` draws for it, as in
    :func:`fedlab.data.split`; the masks are left as they are.

    Parameters
    ----------
    data : ImageDataset
        A dataset with masks, e.g. from :func:`make_segmentation`.
    n_sites : int
        Number of sites, between 1 and the number of training images.
    seed : int
        Seed of this split's own ``numpy.random.default_rng(seed)``.
    names : list of str, optional
        Site names; default ``site-1`` ... ``site-n``.
    weights : sequence of float, optional
        Relative site sizes (``n_sites`` positive numbers); equal by default.
    shift : AcquisitionShift, optional
        Per-site scanner (intensity, contrast, noise, blur, resolution).
    """
    if data.train.task != "segmentation":
        raise ValueError("data must hold masks (labels of shape (N, H, W), or (N, D, H, W) "
                         "for volumes); for classification datasets use fedlab.data.split")
    names = check_sites(data, n_sites, names)
    w = np.ones(n_sites) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n_sites,) or not np.all(np.isfinite(w)) or not np.all(w > 0):
        raise ValueError(f"weights must be {n_sites} finite numbers > 0, got {weights!r}")
    rng = np.random.default_rng(seed)
    parts = [[part.subset(i) for i in _cut(len(part), w / w.sum(), rng)]
             for part in (data.train, data.val, data.test)]
    scanners = shift.scanners(n_sites, rng) if shift is not None else None
    sites = []
    for i, site_name in enumerate(names):
        splits = [parts[k][i] for k in range(3)]
        if scanners is not None:
            splits = [Split(scanners[i].apply(p.images, k), p.labels)
                      for k, p in enumerate(splits)]
        sites.append(Site(site_name, *splits, classes=data.classes))
    scheme = " + ".join(x for x in ("random images" if weights is None else
                                    f"random images, weights {list(w)}",
                                    repr(shift) if shift is not None else "") if x)
    fed = Federation(sites, dataset=data.name, scheme=scheme, seed=seed)
    fed.scanners = dict(zip(names, scanners, strict=True)) if scanners is not None else {}
    return fed
