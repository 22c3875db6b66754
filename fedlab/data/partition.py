"""Partitioning a dataset into sites: shares per class, then one composed ``split``.

Every scheme decides, for each class, which share of that class each site receives
(a ``(n_classes, n_sites)`` matrix whose rows sum to 1). The same shares are applied to
the train, val and test splits, so a site's test set follows that site's own label
distribution and the union of the site test sets is the official test set (every sample
in exactly one site, in every split).

This module holds the two classic schemes (:class:`IID`, :class:`Dirichlet`) and
:func:`split`, which composes label skew, quantity skew and acquisition shift. More
schemes (pathological, shards, quantity skew) are in :mod:`fedlab.data.skew`, the share
arithmetic (``assign``, ``repair_min_size``, ``fit_sizes``) in :mod:`fedlab.data.shares`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split
from .shares import assign, check_min_size, finite_rows, fit_sizes, repair_min_size

__all__ = ["IID", "Dirichlet", "Scheme", "split", "assign", "repair_min_size", "fit_sizes"]

SPLITS = ("train", "val", "test")


class Scheme(Protocol):
    """A partition scheme: gives a (n_classes, n_sites) matrix of shares per class."""

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class IID:
    """Each class is spread evenly over the sites (stratified IID)."""

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        return np.full((n_classes, n_sites), 1.0 / n_sites)


@dataclass(frozen=True)
class Dirichlet:
    """Label skew: each class's shares over the sites are drawn from Dir(alpha).

    Small ``alpha`` (0.1) gives sites dominated by one or two classes, large ``alpha``
    (100) approaches IID. Draws are repeated (at most ``max_retries`` times) until every
    site holds at least ``min_size`` training samples. When no draw succeeds (typical for
    tiny ``alpha``: with ``alpha=0.01`` each class goes almost whole to one site):

    - ``fallback="repair"`` (default) keeps the draw whose smallest site is largest and
      repairs it deterministically (:func:`~fedlab.data.shares.repair_min_size`): each
      site below ``min_size`` (in site order) receives samples from the currently largest site,
      preferring a class it already holds, else the donor's most frequent class, until it
      holds exactly ``min_size``. The result keeps the strong label skew and has no empty
      site; repaired sites hold exactly ``min_size`` training samples.
    - ``fallback="raise"`` raises a ValueError saying why it gave up.

    ``min_size=0`` allows empty sites: the first draw is kept as it is.

    Parameters
    ----------
    alpha : float
        Concentration, > 0.
    min_size : int
        Fewest training samples a site may get, >= 0 (``n_sites * min_size`` may not
        exceed the number of training samples).
    max_retries : int
        Draws tried before the fallback, >= 1.
    fallback : {"repair", "raise"}
        What to do when no draw gives every site ``min_size`` samples.
    """

    alpha: float = 0.5
    min_size: int = 10
    max_retries: int = 100
    fallback: Literal["repair", "raise"] = "repair"

    def __post_init__(self) -> None:
        if not np.isfinite(self.alpha) or self.alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        if not isinstance(self.min_size, (int, np.integer)) or self.min_size < 0:
            raise ValueError(f"min_size must be an integer >= 0, got {self.min_size!r}")
        if not isinstance(self.max_retries, (int, np.integer)) or self.max_retries < 1:
            raise ValueError(f"max_retries must be an integer >= 1, got {self.max_retries!r}")
        if self.fallback not in ("repair", "raise"):
            raise ValueError(f"fallback must be 'repair' or 'raise', got {self.fallback!r}")

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        check_min_size(self.min_size, n_sites, len(labels), "Dirichlet")
        best, best_min = None, -1
        for _ in range(self.max_retries):
            p = rng.dirichlet(np.full(n_sites, self.alpha), size=n_classes)
            p = p if np.isfinite(p).all() else finite_rows(p)
            smallest = np.bincount(assign(labels, p, rng)[1], minlength=n_sites).min()
            if smallest >= self.min_size:
                return p
            if smallest > best_min:
                best, best_min = p, smallest
        if self.fallback == "raise":
            raise ValueError(
                f"Dirichlet(alpha={self.alpha}) left a site with fewer than min_size="
                f"{self.min_size} training samples in {self.max_retries} draws; raise alpha, "
                f"use fewer sites, lower min_size, or use fallback='repair'"
            )
        return repair_min_size(best, np.bincount(labels, minlength=n_classes), self.min_size)


def _split_one(part: Split, shares: np.ndarray, n_sites: int,
               rng: np.random.Generator) -> list[Split]:
    order, owner = assign(part.labels, shares, rng)
    return [part.subset(np.sort(order[owner == s])) for s in range(n_sites)]


def check_sites(data: ImageDataset, n_sites: int, names: list[str] | None) -> list[str]:
    if not isinstance(n_sites, (int, np.integer)) or isinstance(n_sites, bool) or n_sites < 1:
        raise ValueError(f"n_sites must be an integer >= 1, got {n_sites!r}")
    if n_sites > len(data.train):
        raise ValueError(
            f"n_sites={n_sites} is more than the {len(data.train)} training samples of "
            f"{data.name!r}; use at most {len(data.train)} sites"
        )
    names = names or [f"site-{i + 1}" for i in range(n_sites)]
    if len(names) != n_sites or len(set(names)) != n_sites:
        raise ValueError(f"names must be {n_sites} distinct strings, got {names!r}")
    return list(names)


def split(data: ImageDataset, n_sites: int, scheme: Scheme | None = None, seed: int = 0,
          names: list[str] | None = None, *, sizes=None, shift=None) -> Federation:
    """Split ``data`` into ``n_sites`` sites, each with its own train / val / test.

    Label skew, quantity skew and acquisition shift compose in one call::

        fl.data.split(data, 5, scheme=fl.data.Dirichlet(0.3),
                      sizes=fl.data.QuantitySkew("powerlaw", skew=1.0),
                      shift=fl.data.AcquisitionShift(strength=0.5), seed=0)

    In that order: ``scheme`` gives each class's shares over the sites; ``sizes``
    rescales them so site sizes follow a skewed distribution (``shares.fit_sizes``; the
    scheme's zero shares stay zero); any site left below the largest ``min_size`` of
    ``scheme`` and ``sizes`` is repaired (``shares.repair_min_size``); the shares are
    applied to train, val and test; finally each site's images pass through its own
    "scanner" drawn by ``shift`` (the same scanner for all three splits of a site).
    Adding ``sizes`` or ``shift`` never changes the draws made before it.

    Parameters
    ----------
    data : ImageDataset
        What to split (e.g. ``fedlab.data.load("pneumoniamnist")``).
    n_sites : int
        Number of sites, between 1 and the number of training samples.
    scheme : Scheme, optional
        Label skew: ``IID()`` (default), ``Dirichlet(alpha)``, ``Pathological(k)``,
        ``Shards(n)``, or ``QuantitySkew(...)`` (sizes skewed, labels IID).
    seed : int
        Seed of this split's own ``numpy.random.default_rng(seed)``, the only source of
        randomness of every step; the global RNG is never used.
    names : list of str, optional
        Site names; default ``site-1`` ... ``site-n``.
    sizes : QuantitySkew, optional
        Quantity skew on top of ``scheme``.
    shift : AcquisitionShift, optional
        Per-site scanner (intensity, contrast, noise, blur, resolution).

    Returns
    -------
    Federation
        ``scheme`` describes the composition (``"Dirichlet(...) + QuantitySkew(...)"``);
        the extra attribute ``scanners`` maps each site name to its
        :class:`~fedlab.data.shift.Scanner` (empty without ``shift``).
    """
    if data.train.labels.ndim != 1:
        raise ValueError("data holds segmentation masks: split it with "
                         "fedlab.data.split_segmentation")
    scheme = IID() if scheme is None else scheme
    names = check_sites(data, n_sites, names)
    rng = np.random.default_rng(seed)
    labels = data.train.labels
    class_sizes = np.bincount(labels, minlength=data.n_classes)
    shares = scheme.shares(labels, n_sites, data.n_classes, rng)
    if sizes is not None:
        shares = fit_sizes(shares, class_sizes, sizes.fractions(n_sites, len(labels), rng))
        min_size = max(getattr(scheme, "min_size", 0), getattr(sizes, "min_size", 0))
        shares = repair_min_size(shares, class_sizes, min_size)
    parts = [_split_one(getattr(data, s), shares, n_sites, rng) for s in SPLITS]
    scanners = shift.scanners(n_sites, rng) if shift is not None else None
    sites = []
    for i in range(n_sites):
        splits = [parts[k][i] for k in range(3)]
        if scanners is not None:
            splits = [Split(scanners[i].apply(p.images, k), p.labels)
                      for k, p in enumerate(splits)]
        sites.append(Site(names[i], *splits, classes=data.classes))
    described = " + ".join(repr(x) for x in (scheme, sizes, shift) if x is not None)
    fed = Federation(sites, dataset=data.name, scheme=described, seed=seed)
    fed.scanners = dict(zip(names, scanners, strict=True)) if scanners is not None else {}
    return fed
