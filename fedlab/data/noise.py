"""Degrade one site on purpose: noisy labels, or a different scanner.

Real federations have a hospital whose labels are unreliable (weak labelling from
reports, a different reading protocol) or whose scanner differs. These helpers return
a *new* :class:`~fedlab.sites.Site` built from an existing one, seeded, so lessons on
fairness and site contribution can plant a known problem and check it is found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .base import Split
from .shift import Scanner

__all__ = ["noisy_labels", "rescan"]

SPLITS = ("train", "val", "test")


def _check_splits(splits: Sequence[str]) -> tuple[str, ...]:
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {splits}")
    return splits


def _corrupt(labels: np.ndarray, n_classes: int, fraction: float, kind: str,
             rng: np.random.Generator) -> np.ndarray:
    out = labels.copy()
    chosen = rng.random(len(labels)) < fraction
    if kind == "random":  # any class, the true one included: fraction 1 is pure noise
        out[chosen] = rng.integers(0, n_classes, int(chosen.sum()))
    else:  # "flip": always a wrong class
        shift = rng.integers(1, n_classes, int(chosen.sum()))
        out[chosen] = (labels[chosen] + shift) % n_classes
    return out


def noisy_labels(site, fraction: float, seed: int = 0,
                 kind: Literal["random", "flip"] = "random",
                 splits: Sequence[str] = ("train",), name: str | None = None):
    """A copy of ``site`` whose labels are corrupted in ``splits``.

    Parameters
    ----------
    site : Site
        The site to copy (it is not changed).
    fraction : float
        Share of samples, in ``[0, 1]``, whose label is redrawn.
    seed : int
        Seed of which samples are redrawn and to what.
    kind : {"random", "flip"}
        ``"random"``: a uniformly random class (``fraction=1`` gives labels independent
        of the images); ``"flip"``: always a different class than the true one.
    splits : sequence of str
        Which splits to corrupt; the training split by default, so the site's test
        split still measures the truth.
    name : str, optional
        Name of the new site (default: the same name, so it can replace the original).
    """

    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if kind not in ("random", "flip"):
        raise ValueError(f"kind must be 'random' or 'flip', got {kind!r}")
    splits = _check_splits(splits)
    rng = np.random.default_rng(seed)
    parts = {}
    for s in SPLITS:
        part = site.split(s)
        labels = (_corrupt(part.labels, len(site.classes), fraction, kind, rng)
                  if s in splits else part.labels)
        parts[s] = Split(part.images.copy(), labels)
    return site.replace(name, **parts)


def rescan(site, scanner: Scanner, name: str | None = None):
    """A copy of ``site`` whose images (all splits) went through ``scanner`` (an
    acquisition shift of this site only).

    Parameters
    ----------
    site : Site
        The site to re-image (left unchanged).
    scanner : Scanner
        The simulated scanner its images go through.
    name : str, optional
        Name of the new site (default: the same name, so it can replace the original).
    """

    if not isinstance(scanner, Scanner):
        raise TypeError(f"scanner must be a fedlab.data.Scanner, got {type(scanner).__name__}")
    parts = {s: Split(scanner.apply(site.split(s).images, k), site.split(s).labels.copy())
             for k, s in enumerate(SPLITS)}
    return site.replace(name, **parts)
