"""Heterogeneity statistics: how different are the sites?

Label skew is measured on the label counts a site may share (``Site.label_counts``):
the distance of each site's label distribution to the global one, and site to site.
Acquisition shift is measured on intensities, which needs the pixels: those functions
look inside the sites (``Site.peek``) and are for teaching figures only.

Distances between label distributions ``p`` and ``q``:

- ``"js"``: Jensen-Shannon distance, ``sqrt(JSD)`` with base-2 logarithms, in
  ``[0, 1]`` (0: same distribution, 1: disjoint classes);
- ``"tv"``: total variation ``0.5 * sum|p - q|`` in ``[0, 1]``, which is also the earth
  mover's distance when moving a sample between any two classes costs 1;
- ``"emd"``: ``sum|p - q|`` in ``[0, 2]``, what Zhao et al. (2018, "Federated learning
  with non-IID data") call the EMD between a site's and the global distribution.

pandas is imported inside the functions, so ``import fedlab`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["label_shares", "js_distance", "total_variation", "label_distance",
           "distance_to_global", "distance_matrix", "intensity_stats", "intensity_histogram",
           "scanner_info"]

Metric = Literal["js", "tv", "emd"]
METRICS = ("js", "tv", "emd")


def label_shares(sites: Sequence, split: str = "train") -> np.ndarray:
    """Array ``(n_sites, n_classes)``: each site's label distribution (NaN if empty).

    Parameters
    ----------
    sites : sequence of Site
        The sites (a :class:`~fedlab.Federation` will do).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    """
    counts = np.stack([s.label_counts(split) for s in sites]).astype(float)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / total


def _as_distribution(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return p / p.sum() if p.sum() > 0 else np.full_like(p, np.nan)


def js_distance(p, q) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two distributions or counts.

    Parameters
    ----------
    p, q : array_like
        Probabilities or counts per class (normalised here); NaN when either sums to 0.
    """
    p, q = _as_distribution(p), _as_distribution(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    if np.isnan(p).any() or np.isnan(q).any():
        return float("nan")
    return float(np.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0)))


def total_variation(p, q) -> float:
    """Total variation distance ``0.5 * sum|p - q|`` (in [0, 1])."""
    p, q = _as_distribution(p), _as_distribution(q)
    return float(0.5 * np.abs(p - q).sum())


def label_distance(p, q, metric: Metric = "js") -> float:
    """Distance between two label distributions (or count vectors); see module doc.

    Parameters
    ----------
    p, q : array_like
        Probabilities or counts per class (normalised here).
    metric : {"js", "tv", "emd"}
        Jensen-Shannon distance, total variation or EMD (twice the total variation).
    """
    if metric == "js":
        return js_distance(p, q)
    if metric == "tv":
        return total_variation(p, q)
    if metric == "emd":
        return 2.0 * total_variation(p, q)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def distance_to_global(sites: Sequence, metric: Metric = "js", split: str = "train"):
    """DataFrame: site, n, distance of its label distribution to the pooled one.

    Parameters
    ----------
    sites : sequence of Site
        The sites (a :class:`~fedlab.Federation` will do).
    metric : {"js", "tv", "emd"}
        The distance, see :func:`label_distance`.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    """
    import pandas as pd

    counts = np.stack([s.label_counts(split) for s in sites])
    glob = counts.sum(axis=0)
    return pd.DataFrame({
        "site": [s.name for s in sites],
        "n": counts.sum(axis=1).astype(int),
        "distance": [label_distance(c, glob, metric) for c in counts],
    })


def distance_matrix(sites: Sequence, metric: Metric = "js", split: str = "train"):
    """DataFrame ``(n_sites, n_sites)`` of label distances, indexed by site names.

    Parameters
    ----------
    sites : sequence of Site
        The sites (a :class:`~fedlab.Federation` will do).
    metric : {"js", "tv", "emd"}
        The distance, see :func:`label_distance`.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    """
    import pandas as pd

    counts = [s.label_counts(split) for s in sites]
    names = [s.name for s in sites]
    d = np.array([[label_distance(a, b, metric) for b in counts] for a in counts])
    return pd.DataFrame(d, index=pd.Index(names, name="site"), columns=names)


def _pixels(site, split: str, max_samples: int | None, seed: int) -> np.ndarray:
    n = site.size(split) if max_samples is None else min(max_samples, site.size(split))
    return site.peek(n, split, seed).images.ravel()


def intensity_stats(sites: Sequence, split: str = "train",
                    percentiles: Sequence[float] = (1, 50, 99),
                    max_samples: int | None = 2000, seed: int = 0):
    """DataFrame: site, n_images, mean, std and ``p<q>`` columns of pixel intensities.

    At most ``max_samples`` images per site are read (a seeded sample; None: all).
    Teaching view: it looks at the sites' pixels.

    Parameters
    ----------
    sites : sequence of Site
        The sites (a :class:`~fedlab.Federation` will do).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    percentiles : sequence of float
        Percentiles (0-100) to report, one ``p<q>`` column each.
    max_samples : int or None
        Images read per site at most; None reads them all.
    seed : int
        Seed of the sample of images.
    """
    import pandas as pd

    rows = []
    for site in sites:
        x = _pixels(site, split, max_samples, seed)
        row = {"site": site.name, "n_images": site.size(split) if max_samples is None
               else min(max_samples, site.size(split)),
               "mean": float(x.mean()) if x.size else np.nan,
               "std": float(x.std()) if x.size else np.nan}
        for q in percentiles:
            row[f"p{q:g}"] = float(np.percentile(x, q)) if x.size else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def intensity_histogram(sites: Sequence, split: str = "train", bins: int = 32,
                        max_samples: int | None = 2000, seed: int = 0):
    """DataFrame: site, bin_left, bin_right, density (pixels in ``[0, 1]``, each site's
    density integrates to 1). Teaching view: it looks at the sites' pixels.

    Parameters
    ----------
    sites : sequence of Site
        The sites (a :class:`~fedlab.Federation` will do).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    bins : int
        Number of equal-width bins over ``[0, 1]``, at least 1.
    max_samples : int or None
        Images read per site at most (a seeded sample); None reads them all.
    seed : int
        Seed of the sample of images.
    """
    import pandas as pd

    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    frames = []
    for site in sites:
        x = _pixels(site, split, max_samples, seed)
        density = np.histogram(x, bins=edges, density=True)[0] if x.size else np.zeros(bins)
        frames.append(pd.DataFrame({"site": site.name, "bin_left": edges[:-1],
                                    "bin_right": edges[1:], "density": density}))
    return pd.concat(frames, ignore_index=True)


def scanner_info(federation):
    """DataFrame: one row per site with its scanner's parameters (identity if none).

    Reads ``federation.scanners`` (set by :func:`fedlab.data.split` with ``shift=`` and
    by :func:`fedlab.data.apply_shift`).
    """
    import pandas as pd

    from .shift import Scanner

    scanners = getattr(federation, "scanners", {}) or {}
    rows = []
    for name in federation.names:
        d = scanners.get(name, Scanner()).as_dict()
        d.pop("seed")
        rows.append({"site": name, **d})
    return pd.DataFrame(rows)
