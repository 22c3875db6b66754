"""Synthetic medical-like volumes ``(N, 1, D, H, W)``: an organ with lesions, per site.

Each volume shows a textured ellipsoidal "organ" on a dark background with zero to
``max_lesions`` small bright "lesions" (soft ellipsoidal blobs) inside it. Two tasks:

- ``"classification"``: the label is whether the volume holds a lesion (classes
  ``("no lesion", "lesion")``, balanced); organ size, texture, brightness and the
  lesions' size, brightness and count are drawn independently of the label;
- ``"segmentation"``: the label is a mask ``(N, D, H, W)`` with classes ``("background",
  "organ", "lesion")``, as in :func:`fedlab.data.make_segmentation`; a voxel is organ
  (lesion) exactly when the organ's (a lesion's) soft edge is above one half.

Volumes are sized ``(D, H, W)`` voxels; the shapes scale with each side, so a
thick-slice volume (small ``D``) has flatter lesions, as in CT or MRI. Sites made by
:func:`make_volume_sites` hold patients of their own and image them through scanners of
their own: the gain and gamma of :class:`~fedlab.data.Scanner`, drawn by
:class:`~fedlab.data.AcquisitionShift` and applied here with numpy, so generating stays
fast (no MONAI import). Every split (of every site) has its own generator spawned from
``seed``: same seed, same volumes.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split
from .segmentation import SEGMENTATION_CLASSES
from .shift import AcquisitionShift, Scanner
from .synthetic import check_int, interp_matrix

__all__ = ["make_volumes", "make_volume_sites", "VOLUME_CLASSES"]

VOLUME_CLASSES = ("no lesion", "lesion")
Task = Literal["classification", "segmentation"]


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Voxel coordinates ``z, y, x`` shaped to broadcast against ``(N, D, H, W)``."""
    d, h, w = shape
    return (np.arange(d, dtype=np.float32)[None, :, None, None],
            np.arange(h, dtype=np.float32)[None, None, :, None],
            np.arange(w, dtype=np.float32)[None, None, None, :])


def _blob(grid, centre, radii) -> np.ndarray:
    """Soft ellipsoids ``(N, D, H, W)`` in ``[0, 1]``, above 1/2 inside; centres and radii
    are triples of ``(N, 1, 1, 1)`` arrays (``z, y, x``)."""
    d2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return 1.0 / (1.0 + np.exp(-6.0 * (1.0 - np.sqrt(d2))))


def _volumes(n_lesions: np.ndarray, shape: tuple[int, int, int], noise: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Volumes ``(N, 1, D, H, W)`` with ``n_lesions[i]`` lesions each, and their masks."""
    n, size = len(n_lesions), np.array(shape, dtype=np.float32)
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)[:, None, None, None]  # noqa: E731
    grid = _grid(shape)
    centre = [(s - 1) / 2 + u(-0.05, 0.05) * s for s in size]
    axes = [u(0.30, 0.42) * s for s in size]
    theta = u(-0.5, 0.5)  # the organ turns about the D axis
    cos, sin = np.cos(theta), np.sin(theta)
    dy, dx = grid[1] - centre[1], grid[2] - centre[2]
    r = np.sqrt(((grid[0] - centre[0]) / axes[0]) ** 2 + ((dy * cos + dx * sin) / axes[1]) ** 2
                + ((dx * cos - dy * sin) / axes[2]) ** 2)
    organ = 1.0 / (1.0 + np.exp(-12.0 * (1.0 - r)))
    coarse = rng.uniform(-1, 1, (n, 3, 5, 5)).astype(np.float32)
    texture = np.einsum("dk,nkij,hi,wj->ndhw", interp_matrix(shape[0], 3), coarse,
                        interp_matrix(shape[1], 5), interp_matrix(shape[2], 5), optimize=True)
    img = 0.06 + organ * (u(0.35, 0.50) + 0.08 * texture)
    lesion = np.zeros_like(organ)
    for k in range(int(n_lesions.max(initial=0))):
        v = rng.standard_normal((3, n)).astype(np.float32)  # a direction, then a depth
        v = v / np.linalg.norm(v, axis=0).clip(1e-6) * rng.uniform(0, 0.45, n)
        ez, ey, ex = (v[i][:, None, None, None] * axes[i] for i in range(3))
        at = (centre[0] + ez, centre[1] + ey * cos - ex * sin, centre[2] + ey * sin + ex * cos)
        spot = _blob(grid, at, [u(0.10, 0.15) * s for s in size])
        lesion = np.maximum(lesion, spot * (n_lesions > k)[:, None, None, None])
    img = (img + u(0.28, 0.42) * lesion) * u(0.85, 1.15)
    img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    mask = (organ > 0.5).astype(np.int64)
    mask[(lesion > 0.5) & (organ > 0.5)] = 2
    return np.clip(img, 0.0, 1.0).astype(np.float32)[:, None], mask


def _split(n: int, task: str, shape: tuple[int, int, int], max_lesions: int, noise: float,
           rng: np.random.Generator) -> Split:
    if task == "classification":
        labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
        counts = labels * rng.integers(1, max_lesions + 1, n)
        return Split(_volumes(counts, shape, noise, rng)[0], labels)
    images, masks = _volumes(rng.integers(0, max_lesions + 1, n), shape, noise, rng)
    return Split(images, masks)


def _check(task: object, volume_size: object, max_lesions: object,
           noise: object) -> tuple[tuple[int, int, int], int]:
    if task not in ("classification", "segmentation"):
        raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}")
    sides = (volume_size,) * 3 if isinstance(volume_size, numbers.Integral) else volume_size
    ok = isinstance(sides, tuple | list) and len(sides) == 3 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 8 and s % 4 == 0
        for s in sides)
    if not ok:
        raise ValueError(f"volume_size must be (D, H, W) (or one side for all three) of "
                         f"multiples of 4 that are >= 8, got {volume_size!r}")
    if not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return tuple(int(s) for s in sides), check_int("max_lesions", max_lesions, 1, 5)


def _splits(sizes: list[int], task: str, shape: tuple[int, int, int], max_lesions: int,
            noise: float, seq: np.random.SeedSequence) -> list[Split]:
    rngs = [np.random.default_rng(s) for s in seq.spawn(3)]
    return [_split(n, task, shape, max_lesions, float(noise), rng)
            for n, rng in zip(sizes, rngs, strict=True)]


def make_volumes(n_train: int = 120, n_val: int = 20, n_test: int = 40,
                 task: Task = "classification", volume_size=(16, 32, 32),
                 max_lesions: int = 2, seed: int = 0, noise: float = 0.03,
                 name: str = "synthetic-volumes") -> ImageDataset:
    """Generate a small 3-D dataset: volumes of an organ with lesions, in one place.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Number of volumes per split (each ``>= 1``).
    task : {"classification", "segmentation"}
        Lesion present or not (labels ``(N,)``), or organ and lesion masks ``(N, D, H, W)``.
    volume_size : int or (int, int, int)
        ``(D, H, W)`` in voxels, each a multiple of 4 and ``>= 8`` (the 3-D models pool
        twice); one int for a cube.
    max_lesions : int
        Most lesions in one volume, 1 to 5 (a volume with lesions has 1 to this many).
    seed : int
        Seed (``>= 0``) of the dataset's own generators; same seed, same volumes.
    noise : float
        Standard deviation of additive Gaussian noise (``>= 0``; clipped to ``[0, 1]``).
    name : str
        Name of the returned dataset.

    Returns
    -------
    ImageDataset
        ``float32`` volumes ``(N, 1, D, H, W)`` in ``[0, 1]``; classes
        :data:`VOLUME_CLASSES` or ``("background", "organ", "lesion")``.
    """
    sizes = [check_int(k, v, 1) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    shape, max_lesions = _check(task, volume_size, max_lesions, noise)
    seed = check_int("seed", seed, 0)
    train, val, test = _splits(sizes, task, shape, max_lesions, float(noise),
                               np.random.SeedSequence(seed))
    return ImageDataset(
        name=name, train=train, val=val, test=test,
        classes=VOLUME_CLASSES if task == "classification" else SEGMENTATION_CLASSES,
        license="CC0 (generated)", citation="Generated by fedlab.data.synthetic3d; no citation.",
        description=("Synthetic medical-like volumes: a textured ellipsoidal organ on a dark "
                     "background with zero or more small bright lesions inside it."),
        extra={"generator": "fedlab.data.synthetic3d.make_volumes", "seed": seed,
               "noise": float(noise), "volume_size": shape, "task": task,
               "max_lesions": max_lesions})


def _scan(images: np.ndarray, scanner: Scanner) -> np.ndarray:
    """``scanner``'s gamma, then its gain, as :meth:`Scanner.apply` does (numpy only)."""
    return np.clip(np.clip(images, 0.0, 1.0) ** scanner.gamma * scanner.gain,
                   0.0, 1.0).astype(np.float32)


def make_volume_sites(n_sites: int = 3, n_train: int = 40, n_val: int = 10,
                      n_test: int = 10, task: Task = "classification",
                      volume_size=(16, 32, 32), max_lesions: int = 2, shift: float = 0.5,
                      seed: int = 0, noise: float = 0.03,
                      names: list[str] | None = None) -> Federation:
    """A federation of hospitals with 3-D scans: each site's own patients (volumes drawn
    as by :func:`make_volumes`) seen through its own scanner (intensity and contrast).

    Parameters
    ----------
    n_sites : int
        Number of sites (``>= 1``).
    n_train, n_val, n_test : int
        Volumes per split at every site (each ``>= 1``).
    task, volume_size, max_lesions, noise
        As for :func:`make_volumes`.
    shift : float
        Strength in ``[0, 1]`` of the sites' scanner differences: the gain and gamma of
        :class:`~fedlab.data.AcquisitionShift` (``effects=("gain", "gamma")``); 0 images
        every site alike.
    seed : int
        Seed (``>= 0``) of the sites' volumes and scanners; same seed, same federation.
    names : list of str, optional
        Site names; default ``site-1`` ... ``site-n``.

    Returns
    -------
    Federation
        Its ``scanners`` maps each site name to its :class:`~fedlab.data.Scanner`.
    """
    n_sites = check_int("n_sites", n_sites, 1)
    sizes = [check_int(k, v, 1) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    shape, max_lesions = _check(task, volume_size, max_lesions, noise)
    seed = check_int("seed", seed, 0)
    names = [f"site-{i + 1}" for i in range(n_sites)] if names is None else list(names)
    if len(names) != n_sites or len(set(names)) != n_sites:
        raise ValueError(f"names must be {n_sites} distinct strings, got {names!r}")
    acquisition = AcquisitionShift(strength=shift, effects=("gain", "gamma"))
    *seqs, scan_seq = np.random.SeedSequence(seed).spawn(n_sites + 1)
    scanners = acquisition.scanners(n_sites, np.random.default_rng(scan_seq))
    classes = VOLUME_CLASSES if task == "classification" else SEGMENTATION_CLASSES
    sites = []
    for site, seq, scanner in zip(names, seqs, scanners, strict=True):
        parts = _splits(sizes, task, shape, max_lesions, float(noise), seq)
        sites.append(Site(site, *(Split(_scan(p.images, scanner), p.labels) for p in parts),
                          classes=classes))
    fed = Federation(sites, dataset=f"synthetic-volumes ({task})",
                     scheme=f"own patients per site + {acquisition!r}", seed=seed)
    fed.scanners = dict(zip(names, scanners, strict=True))
    return fed
