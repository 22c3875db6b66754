"""More partition schemes: pathological label skew, McMahan shards, quantity skew.

Each scheme is a frozen dataclass with a ``shares(labels, n_sites, n_classes, rng)``
method (see :class:`fedlab.data.partition.Scheme`); pass it to
:func:`fedlab.data.split`. All randomness comes from the ``rng`` that ``split`` builds
from its seed, and every scheme runs in a bounded number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .shares import check_min_size, repair_min_size, shares_from_counts

__all__ = ["Pathological", "Shards", "QuantitySkew"]


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class Pathological:
    """Each site sees only ``classes_per_site`` classes (the "#C=k" setting).

    The classes are shuffled, then dealt round-robin: site ``i`` holds classes
    ``i*k, ..., i*k + k - 1`` (modulo the number of classes) of that shuffled order, so
    every class belongs to at least one site and classes are spread as evenly as
    possible. A class is divided equally between the sites that hold it.

    Parameters
    ----------
    classes_per_site : int
        ``k``, between 1 and the number of classes; ``k * n_sites`` must be at least the
        number of classes (else some class would belong to no site).
    """

    classes_per_site: int = 2

    def __post_init__(self) -> None:
        _positive_int("classes_per_site", self.classes_per_site)

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        k = self.classes_per_site
        if k > n_classes:
            raise ValueError(f"classes_per_site must be in [1, n_classes={n_classes}], got {k}")
        if k * n_sites < n_classes:
            raise ValueError(
                f"classes_per_site={k} x n_sites={n_sites} < n_classes={n_classes}: some "
                f"classes would belong to no site; raise classes_per_site or add sites"
            )
        order = rng.permutation(n_classes)
        held = np.zeros((n_classes, n_sites))
        for s in range(n_sites):
            held[order[(s * k + np.arange(k)) % n_classes], s] = 1.0
        return held / held.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Shards:
    """Shards, as in McMahan et al. (2017): sort by label, cut, deal.

    The training samples are sorted by label and cut into ``n_sites * shards_per_site``
    shards of (almost) equal size; the shards are shuffled and dealt so that every site
    gets ``shards_per_site`` of them. With 2 shards per site most sites see one or two
    classes. Val and test follow each site's resulting shares per class.

    Parameters
    ----------
    shards_per_site : int
        Shards each site receives, >= 1 (``n_sites * shards_per_site`` may not exceed
        the number of training samples).
    """

    shards_per_site: int = 2

    def __post_init__(self) -> None:
        _positive_int("shards_per_site", self.shards_per_site)

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        n_shards = n_sites * self.shards_per_site
        if n_shards > len(labels):
            raise ValueError(
                f"shards_per_site={self.shards_per_site} x n_sites={n_sites} = {n_shards} "
                f"shards is more than the {len(labels)} training samples; lower "
                f"shards_per_site"
            )
        ordered = np.sort(labels, kind="stable")
        bounds = np.rint(np.linspace(0, len(labels), n_shards + 1)).astype(int)
        owner = rng.permutation(n_shards) % n_sites
        counts = np.zeros((n_classes, n_sites), dtype=int)
        for i in range(n_shards):
            counts[:, owner[i]] += np.bincount(ordered[bounds[i]:bounds[i + 1]],
                                               minlength=n_classes)
        return shares_from_counts(counts, np.full((n_classes, n_sites), 1.0 / n_sites))


@dataclass(frozen=True)
class QuantitySkew:
    """Quantity skew: site sizes differ, labels are otherwise IID.

    Site ``s`` receives a fraction ``min_size/N + (1 - n_sites*min_size/N) * w_s/sum(w)``
    of the ``N`` training samples, where the weights ``w`` follow:

    - ``"powerlaw"``: Zipf's law, the ``r``-th largest site has ``w = r ** -skew``; the
      ranks are shuffled over the sites. Largest/smallest weight = ``n_sites ** skew``.
    - ``"lognormal"``: ``w = exp(skew * z)`` with ``z`` standard normal per site.

    ``skew=0`` gives equal sizes; the imbalance grows with ``skew``. Use it as a
    ``scheme`` (labels IID) or as ``split(..., sizes=QuantitySkew(...))`` on top of a
    label-skew scheme.

    Parameters
    ----------
    distribution : {"powerlaw", "lognormal"}
        Shape of the size distribution.
    skew : float
        Exponent (powerlaw) or sigma of the log sizes (lognormal), >= 0.
    min_size : int
        Fewest training samples a site gets, >= 0.
    """

    distribution: Literal["powerlaw", "lognormal"] = "powerlaw"
    skew: float = 1.0
    min_size: int = 10

    def __post_init__(self) -> None:
        if self.distribution not in ("powerlaw", "lognormal"):
            raise ValueError(
                f"distribution must be 'powerlaw' or 'lognormal', got {self.distribution!r}"
            )
        if not isinstance(self.skew, (int, float)) or not math.isfinite(self.skew) \
                or self.skew < 0:
            raise ValueError(f"skew must be a finite number >= 0, got {self.skew!r}")
        if not isinstance(self.min_size, (int, np.integer)) or self.min_size < 0:
            raise ValueError(f"min_size must be an integer >= 0, got {self.min_size!r}")

    def fractions(self, n_sites: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Share of the training samples for each site (sums to 1)."""
        check_min_size(self.min_size, n_sites, n_samples, "QuantitySkew")
        if self.distribution == "powerlaw":
            w = (rng.permutation(n_sites) + 1.0) ** -self.skew
        else:
            w = np.exp(self.skew * rng.standard_normal(n_sites))
        floor = self.min_size / n_samples
        return floor + (1.0 - n_sites * floor) * w / w.sum()

    def shares(self, labels: np.ndarray, n_sites: int, n_classes: int,
               rng: np.random.Generator) -> np.ndarray:
        q = self.fractions(n_sites, len(labels), rng)
        shares = np.tile(q, (n_classes, 1))
        return repair_min_size(shares, np.bincount(labels, minlength=n_classes), self.min_size)
