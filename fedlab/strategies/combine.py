"""Robust combination rules: pure functions from the sites' updates to one update.

Each takes the updates as rows of an array of shape ``(n_sites, n_coordinates)`` (or
anything :func:`torch.as_tensor` turns into one) and returns the combined row; see
:mod:`fedlab.strategies.robust` for the papers and for the strategies that use them.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["coordinate_median", "trimmed_mean", "krum_scores", "krum", "clipped_mean",
           "as_rows"]


def as_rows(updates) -> torch.Tensor:
    """The updates as a float64 tensor of shape (n_sites, n_coordinates)."""
    x = torch.as_tensor(np.asarray(updates) if not torch.is_tensor(updates) else updates)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"updates must have shape (n_sites >= 1, n_coordinates), "
                         f"got {tuple(x.shape)}")
    return x.to(torch.float64)


def coordinate_median(updates) -> torch.Tensor:
    """Per-coordinate median (the mean of the two middle values when ``n`` is even)."""
    x = as_rows(updates).sort(dim=0).values
    n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2


def trimmed_mean(updates, beta: float = 0.2) -> torch.Tensor:
    """Per-coordinate mean after dropping the ``floor(beta * n)`` lowest and highest values.

    ``beta`` in ``[0, 0.5)``; 0 is the plain mean.
    """
    if not 0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    x = as_rows(updates).sort(dim=0).values
    k = int(np.floor(beta * len(x)))
    return x[k:len(x) - k].mean(dim=0)


def krum_scores(updates, n_byzantine: int = 1) -> torch.Tensor:
    """Krum's score of each update: summed squared distances to its ``n - f - 2`` nearest
    other updates (at least one). Lower is more central."""
    if n_byzantine < 0:
        raise ValueError(f"n_byzantine must be >= 0, got {n_byzantine}")
    x = as_rows(updates)
    n = len(x)
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    d2 = torch.cdist(x, x).pow(2)
    d2.fill_diagonal_(float("inf"))
    k = min(max(n - n_byzantine - 2, 1), n - 1)
    return d2.sort(dim=1).values[:, :k].sum(dim=1)


def krum(updates, n_byzantine: int = 1, m: int = 1) -> tuple[torch.Tensor, list[int]]:
    """The mean of the ``m`` updates with the lowest Krum scores, and their indices.

    ``m = 1`` is Krum, ``m > 1`` Multi-Krum. Blanchard et al. prove resilience for
    ``n > 2 * n_byzantine + 2``; with fewer sites the neighbourhood shrinks to one.
    """
    x = as_rows(updates)
    if not 1 <= m <= len(x):
        raise ValueError(f"m must be in [1, {len(x)}] (the number of updates), got {m}")
    order = torch.argsort(krum_scores(x, n_byzantine), stable=True)[:m]
    chosen = sorted(int(i) for i in order)
    return x[chosen].mean(dim=0), chosen


def clipped_mean(updates, max_norm: float,
                 weights=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of the updates after scaling each to an L2 norm of at most
    ``max_norm``; also returns each update's scale factor (1 when it was not clipped)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    x = as_rows(updates)
    w = torch.ones(len(x), dtype=torch.float64) if weights is None else \
        torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (len(x),) or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be {len(x)} values >= 0 with a positive sum")
    norms = x.norm(dim=1)
    scale = torch.clamp(max_norm / norms.clamp_min(1e-300), max=1.0)
    return (w / w.sum()) @ (x * scale[:, None]), scale
