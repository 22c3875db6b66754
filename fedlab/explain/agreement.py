"""Agreement between saliency maps, as numbers.

Two models "look at the same thing" when their maps rank the pixels alike (Spearman
rank correlation) and share their most salient pixels (overlap of the top-k %, as
intersection over union). :func:`mass_in` turns "the model looks at the border
artefact" into the share of saliency that falls inside a region. All functions take
maps ``(N, H, W)`` (one per image) and compare image by image.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["rank_correlation", "top_overlap", "mass_in", "agreement", "agreement_matrix",
           "border_mask"]


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"maps must both have shape (N, H, W), got {a.shape} and {b.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def _ranks(rows: np.ndarray) -> np.ndarray:
    """Average ranks along each row (ties share the mean of their ranks)."""
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        out[i] = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return out


def rank_correlation(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps, shape ``(N,)``.

    NaN for an image where one map is flat (no ranking to compare).

    Parameters
    ----------
    a, b : array (N, H, W)
        Two sets of maps of the same images; ``a[i]`` is compared with ``b[i]``.
    """
    ra, rb = (_ranks(m) for m in _pair(a, b))
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / den, np.nan)


def _top(rows: np.ndarray, k: int) -> np.ndarray:
    # stable sort on the negated values: ties go to the lower pixel index, deterministically
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    mask = np.zeros(rows.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def top_overlap(a, b, top: float = 0.1) -> np.ndarray:
    """Intersection over union of the ``top`` share of most salient pixels, ``(N,)``.

    Parameters
    ----------
    a, b : array (N, H, W)
        Two sets of maps of the same images, compared image by image.
    top : float
        Share of pixels in ``(0, 1]`` that count as most salient (0.1: the top 10 %);
        ties go to the lower pixel index.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top}")
    fa, fb = _pair(a, b)
    k = max(1, int(round(top * fa.shape[1])))
    ma, mb = _top(fa, k), _top(fb, k)
    return (ma & mb).sum(1) / (ma | mb).sum(1)


def mass_in(maps, region) -> np.ndarray:
    """Share of each map's total saliency inside ``region`` (a boolean ``(H, W)`` mask),
    ``(N,)``; NaN for an all-zero map. Uniform saliency gives the region's area share.

    ``maps`` is an ``(N, H, W)`` array of non-negative saliency, one map per image.
    """
    maps = np.asarray(maps, dtype=np.float64)
    region = np.asarray(region, dtype=bool)
    if maps.ndim != 3 or region.shape != maps.shape[1:]:
        raise ValueError(f"region must be a boolean mask of shape {maps.shape[1:]}, "
                         f"got {region.shape}")
    total = maps.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (maps * region).sum((1, 2)) / total, np.nan)


def border_mask(size: int | tuple[int, int], width: int = 3) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the ``width``-pixel frame of an image (where scanner
    labels and burnt-in text usually sit).

    ``size`` is the image side (square) or ``(H, W)``; ``width`` must leave an inner
    part, i.e. ``1 <= width`` and ``2 * width < min(H, W)``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if width < 1 or 2 * width >= min(h, w):
        raise ValueError(f"width must be in [1, {(min(h, w) - 1) // 2}], got {width}")
    mask = np.ones((h, w), dtype=bool)
    mask[width:h - width, width:w - width] = False
    return mask


def agreement(a, b, top: float = 0.1) -> pd.DataFrame:
    """Per image: ``rank_correlation`` and ``top_overlap`` of two sets of maps.

    ``a`` and ``b`` are maps ``(N, H, W)`` of the same images; ``top`` is the share of
    most salient pixels used by :func:`top_overlap`. One row per image.
    """
    return pd.DataFrame({"rank_correlation": rank_correlation(a, b),
                         "top_overlap": top_overlap(a, b, top)})


def agreement_matrix(maps: Mapping[str, np.ndarray], measure: str = "rank_correlation",
                     top: float = 0.1) -> pd.DataFrame:
    """Mean agreement over images between every pair of models (a symmetric table).

    Parameters
    ----------
    maps : dict name -> (N, H, W)
        Saliency maps of several models on the same images.
    measure : {"rank_correlation", "top_overlap"}
        Which per-image agreement to average (NaN images are skipped).
    top : float
        Share of most salient pixels for ``"top_overlap"`` (see :func:`top_overlap`).
    """
    if measure not in ("rank_correlation", "top_overlap"):
        raise ValueError(f"measure must be 'rank_correlation' or 'top_overlap', got {measure!r}")
    names = list(maps)
    table = pd.DataFrame(np.nan, index=names, columns=names, dtype=float)
    for i, p in enumerate(names):
        for q in names[i:]:
            values = agreement(maps[p], maps[q], top)[measure]
            table.loc[p, q] = table.loc[q, p] = float(np.nanmean(values)) \
                if values.notna().any() else float("nan")
    return table
