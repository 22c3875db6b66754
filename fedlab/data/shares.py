"""Share arithmetic: from a scheme's shares per class to sample counts per site.

A scheme gives a ``(n_classes, n_sites)`` matrix of shares (rows sum to 1). These
functions turn shares into exact integer counts (:func:`assign`), repair sites below a
minimum size (:func:`repair_min_size`) and impose site sizes (:func:`fit_sizes`). All
are deterministic given their inputs; only :func:`assign` draws (from the ``rng`` given).
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign", "check_min_size", "counts_from_shares", "finite_rows", "shares_from_counts",
           "repair_min_size", "fit_sizes"]


def check_min_size(min_size: int, n_sites: int, n_samples: int, who: str) -> None:
    """Raise when ``n_sites`` sites of ``min_size`` samples cannot exist."""
    if min_size * n_sites > n_samples:
        raise ValueError(
            f"{who} min_size={min_size} x n_sites={n_sites} = {min_size * n_sites} is more "
            f"than the {n_samples} training samples; lower min_size or use fewer sites"
        )


def finite_rows(p: np.ndarray) -> np.ndarray:
    """Rows that sum to 1 (guards against NaN or all-zero draws at tiny alpha)."""
    p = np.nan_to_num(np.asarray(p, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    total = p.sum(axis=1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / p.shape[1])


def counts_from_shares(shares: np.ndarray, class_sizes: np.ndarray) -> np.ndarray:
    """Samples per (class, site) that :func:`assign` gives for ``shares`` (exact)."""
    cuts = np.rint(np.cumsum(shares, axis=1) * class_sizes[:, None]).astype(int)
    cuts[:, -1] = class_sizes
    return np.diff(cuts, axis=1, prepend=0)


def shares_from_counts(counts: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Counts per (class, site) as shares; a class without samples keeps ``fallback``."""
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1), fallback)


def repair_min_size(shares: np.ndarray, class_sizes: np.ndarray, min_size: int) -> np.ndarray:
    """Move samples so that every site holds at least ``min_size`` (deterministic).

    Sites below ``min_size`` are filled in site order. Each move takes from the site with
    the most samples above ``min_size`` (ties: the first) one class: the one, among
    those the receiving site already holds, that the donor has most of, else the donor's
    most frequent class. Returns ``shares`` itself when no site is short. The loop is
    bounded: every move fills a site, empties a donor's class or brings a donor down to
    ``min_size``.
    """
    counts = counts_from_shares(shares, class_sizes)
    if counts.sum(axis=0).min() >= min_size:
        return shares
    check_min_size(min_size, counts.shape[1], int(class_sizes.sum()), "the requested")
    for s in range(counts.shape[1]):
        while (need := min_size - counts[:, s].sum()) > 0:
            excess = counts.sum(axis=0) - min_size
            excess[s] = 0
            d = int(np.argmax(excess))
            held = counts[:, d] * (counts[:, s] > 0)
            c = int(np.argmax(held if held.any() else counts[:, d]))
            moved = min(need, counts[c, d], excess[d])
            counts[c, d] -= moved
            counts[c, s] += moved
    return shares_from_counts(counts, shares)


def fit_sizes(shares: np.ndarray, class_sizes: np.ndarray, fractions: np.ndarray,
              iterations: int = 100) -> np.ndarray:
    """Rescale each site's shares so site sizes follow ``fractions`` (quantity skew).

    Iterative proportional fitting with a fixed number of iterations: site ``s``'s
    column is multiplied by a weight, rows are renormalised (each class still sums to
    its total), and the weights are corrected towards the target sizes. Zero shares stay
    zero, so a label scheme's "which site holds which class" pattern is kept; where that
    pattern cannot reach a target, the size comes as close as it allows.
    """
    target = np.asarray(fractions, dtype=float) * class_sizes.sum()
    w = np.ones(shares.shape[1])
    out = shares
    for _ in range(iterations):
        out = finite_rows(shares * w)
        got = class_sizes @ out
        w = w * np.where(got > 0, target / np.where(got > 0, got, 1), 1.0)
        w = w / w.max()
    return out


def assign(labels: np.ndarray, shares: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Give each sample a site, class by class, following ``shares``.

    Returns the sample indices (grouped by class, shuffled within a class) and the
    site of each of them. Counts per class are the rounded cumulative shares, so they
    add up exactly to the class size.

    Parameters
    ----------
    labels : ndarray of int, shape (n_samples,)
        The class of each sample.
    shares : ndarray, shape (n_classes, n_sites)
        The share of each class that goes to each site; rows sum to 1.
    rng : numpy.random.Generator
        Shuffles the samples within each class.
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
