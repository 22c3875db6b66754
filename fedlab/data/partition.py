"""Partitioning a dataset into sites: IID and Dirichlet label skew.

Every scheme decides, for each class, which share of that class each site receives.
The same shares are applied to the train, val and test splits, so a site's test set
follows that site's own label distribution and the union of the site test sets is the
official test set (every sample in exactly one site, in every split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split

__all__ = ["IID", "Dirichlet", "Scheme", "split", "assign"]


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
    site holds at least ``min_size`` training samples.

    Parameters
    ----------
    alpha : float
        Concentration, > 0.
    min_size : int
        Fewest training samples a site may get, >= 1.
    max_retries : int
        Draws tried before giving up with an error, >= 1.
    """

    alpha: float = 0.5
    min_size: int = 10
    max_retries: int = 100

    def __post_init__(self) -> None:
        if not np.isfinite(self.alpha) or self.alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        if self.min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {self.min_size!r}")
        if self.max_retries < 1:
            raise ValueError(f"max_retries must be >= 1, got {self.max_retries!r}")

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        for _ in range(self.max_retries):
            p = rng.dirichlet(np.full(n_sites, self.alpha), size=n_classes)
            sizes = np.bincount(assign(labels, p, rng)[1], minlength=n_sites)
            if sizes.min() >= self.min_size:
                return p
        raise ValueError(
            f"Dirichlet(alpha={self.alpha}) left a site with fewer than min_size="
            f"{self.min_size} training samples in {self.max_retries} draws; raise alpha, "
            f"use fewer sites, or lower min_size"
        )


def assign(labels: np.ndarray, shares: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Give each sample a site, class by class, following ``shares``.

    Returns the sample indices (grouped by class, shuffled within a class) and the
    site of each of them. Counts per class are the rounded cumulative shares, so they
    add up exactly to the class size.
    """
    order, owner = [], []
    for c in range(shares.shape[0]):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        cuts = np.rint(np.cumsum(shares[c]) * len(idx)).astype(int)
        cuts[-1] = len(idx)
        counts = np.diff(np.concatenate([[0], cuts]))
        order.append(idx)
        owner.append(np.repeat(np.arange(shares.shape[1]), counts))
    return np.concatenate(order), np.concatenate(owner)


def _split_one(part: Split, shares: np.ndarray, n_sites: int,
               rng: np.random.Generator) -> list[Split]:
    order, owner = assign(part.labels, shares, rng)
    return [part.subset(np.sort(order[owner == s])) for s in range(n_sites)]


def split(data: ImageDataset, n_sites: int, scheme: Scheme | None = None, seed: int = 0,
          names: list[str] | None = None) -> Federation:
    """Split ``data`` into ``n_sites`` sites, each with its own train / val / test.

    Parameters
    ----------
    data : ImageDataset
        What to split (e.g. ``fedlab.data.load("pneumoniamnist")``).
    n_sites : int
        Number of sites, between 1 and the number of training samples.
    scheme : Scheme, optional
        ``IID()`` (default) or ``Dirichlet(alpha)``.
    seed : int
        Seed of this split's own random generator; the global RNG is never used.
    names : list of str, optional
        Site names; default ``site-1`` ... ``site-n``.
    """
    scheme = IID() if scheme is None else scheme
    if not isinstance(n_sites, (int, np.integer)) or n_sites < 1:
        raise ValueError(f"n_sites must be an integer >= 1, got {n_sites!r}")
    if n_sites > len(data.train):
        raise ValueError(
            f"n_sites={n_sites} is more than the {len(data.train)} training samples of "
            f"{data.name!r}; use at most {len(data.train)} sites"
        )
    names = names or [f"site-{i + 1}" for i in range(n_sites)]
    if len(names) != n_sites or len(set(names)) != n_sites:
        raise ValueError(f"names must be {n_sites} distinct strings, got {names!r}")
    rng = np.random.default_rng(seed)
    shares = scheme.shares(data.train.labels, n_sites, data.n_classes, rng)
    parts = [_split_one(getattr(data, s), shares, n_sites, rng) for s in ("train", "val", "test")]
    sites = [Site(names[i], parts[0][i], parts[1][i], parts[2][i], classes=data.classes)
             for i in range(n_sites)]
    return Federation(sites, dataset=data.name, scheme=repr(scheme), seed=seed)
