"""Figures of the federation's data: label mixes, images, skew, intensities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..sites import Site
from .palette import PALETTE


def label_distribution_info(sites: Sequence[Site], split: str = "train") -> pd.DataFrame:
    """Samples per class at each site: columns site, class, count, share.

    ``sites`` is a list of Site, ``split`` the split counted (``"train"``, ``"val"`` or
    ``"test"``).
    """
    rows = []
    for site in sites:
        counts = site.label_counts(split)
        total = max(int(counts.sum()), 1)
        rows += [{"site": site.name, "class": site.classes[c], "count": int(n),
                  "share": n / total} for c, n in enumerate(counts)]
    return pd.DataFrame(rows)


def label_distribution(sites: Sequence[Site], split: str = "train",
                       normalize: bool = False) -> go.Figure:
    """Stacked bars of the classes held by each site (counts, or shares if ``normalize``).

    ``sites`` and ``split`` are as for :func:`label_distribution_info`.
    """
    info = label_distribution_info(sites, split)
    value = "share" if normalize else "count"
    fig = go.Figure()
    for i, (cls, rows) in enumerate(info.groupby("class", sort=False)):
        fig.add_bar(x=rows["site"], y=rows[value], name=str(cls),
                    marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="stack", title=f"Labels per site ({split})",
                      xaxis_title="site", yaxis_title=value, legend_title="class")
    return fig


def sample_images(sites: Sequence[Site], per_site: int = 4, split: str = "train",
                  seed: int = 0) -> go.Figure:
    """A grid of example images: one row per site, label in each title.

    For teaching only: it looks inside the sites, which a real federation cannot do.
    ``per_site`` images (columns) are drawn from each site's ``split``, chosen at random
    by ``seed`` (as :meth:`fedlab.Site.peek`); a site with fewer leaves cells empty.
    Volumes show their middle axial slice (:func:`fedlab.explain.volume_slices` shows
    all three planes).
    """
    titles, images = [], []
    for site in sites:
        part = site.peek(per_site, split, seed)
        for k in range(per_site):
            if k < len(part):
                img = part.images[k]
                images.append(img[:, img.shape[1] // 2] if img.ndim == 4 else img)
                titles.append(f"{site.name}: {site.classes[part.labels[k]]}")
            else:
                images.append(None)
                titles.append("")
    fig = make_subplots(rows=len(sites), cols=per_site, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    for i, img in enumerate(images):
        if img is None:
            continue
        row, col = divmod(i, per_site)
        pixels = np.round(np.moveaxis(img, 0, -1) * 255).astype(np.uint8)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        fig.add_trace(go.Image(z=pixels, hoverinfo="skip"), row=row + 1, col=col + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=10)
    fig.update_layout(height=150 * len(sites) + 60, width=130 * per_site + 60,
                      margin=dict(l=10, r=10, t=50, b=10), title="Example images per site")
    return fig


_METRIC_NAMES = {"js": "Jensen-Shannon distance", "tv": "total variation",
                 "emd": "EMD (sum |p - q|)"}


def label_heatmap(sites: Sequence[Site], split: str = "train",
                  normalize: bool = True) -> go.Figure:
    """Sites x classes heatmap of label shares (or counts if not ``normalize``).

    The numbers are :func:`label_distribution_info`'s, with the same ``sites`` and
    ``split``.
    """
    info = label_distribution_info(sites, split)
    value = "share" if normalize else "count"
    table = info.pivot(index="site", columns="class", values=value)
    table = table.loc[[s.name for s in sites], list(sites[0].classes)]
    fig = go.Figure(go.Heatmap(
        z=table.to_numpy(), x=[str(c) for c in table.columns], y=list(table.index),
        colorscale="Blues", zmin=0, zmax=1 if normalize else None,
        text=table.round(2 if normalize else 0).to_numpy(), texttemplate="%{text}",
        colorbar=dict(title=value)))
    fig.update_layout(title=f"Label {value} per site ({split})", xaxis_title="class",
                      yaxis_title="site", yaxis_autorange="reversed")
    return fig


def label_skew_info(sites: Sequence[Site], metric: str = "js",
                    split: str = "train") -> pd.DataFrame:
    """Columns site, n, distance: each site's label distribution vs the pooled one.

    ``sites`` and ``split`` are as for :func:`label_distribution_info`; ``metric`` is
    ``"js"`` (Jensen-Shannon distance), ``"tv"`` (total variation) or ``"emd"``
    (``sum |p - q|``, twice the total variation).
    """
    from ..data.stats import distance_to_global

    return distance_to_global(sites, metric, split)  # type: ignore[arg-type]


def label_skew(sites: Sequence[Site], metric: str = "js", split: str = "train") -> go.Figure:
    """Bars: how far each site's labels are from the global distribution.

    ``sites``, ``metric`` and ``split`` are as for :func:`label_skew_info`.
    """
    info = label_skew_info(sites, metric, split)
    fig = go.Figure(go.Bar(x=info["site"], y=info["distance"], marker_color=PALETTE[0],
                           customdata=info["n"], hovertemplate="%{x}: %{y:.3f} (n=%{customdata})"))
    fig.update_layout(title=f"Label skew: {_METRIC_NAMES.get(metric, metric)} to the global "
                      f"labels ({split}), mean {info['distance'].mean():.3f}",
                      xaxis_title="site", yaxis_title=metric)
    return fig


def site_distances_info(sites: Sequence[Site], metric: str = "js",
                        split: str = "train") -> pd.DataFrame:
    """Columns site_a, site_b, distance between the sites' label distributions.

    ``sites``, ``metric`` and ``split`` are as for :func:`label_skew_info`.
    """
    from ..data.stats import distance_matrix

    matrix = distance_matrix(sites, metric, split)  # type: ignore[arg-type]
    return (matrix.rename_axis(index="site_a", columns="site_b").stack()
            .rename("distance").reset_index())


def site_distances(sites: Sequence[Site], metric: str = "js",
                   split: str = "train") -> go.Figure:
    """Site-to-site heatmap of label distances (0: same label distribution).

    ``sites``, ``metric`` and ``split`` are as for :func:`label_skew_info`.
    """
    info = site_distances_info(sites, metric, split)
    names = [s.name for s in sites]
    z = info["distance"].to_numpy().reshape(len(names), len(names))
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", zmin=0,
                               zmax=2 if metric == "emd" else 1, text=np.round(z, 2),
                               texttemplate="%{text}", colorbar=dict(title=metric)))
    fig.update_layout(title=f"Site-to-site label {_METRIC_NAMES.get(metric, metric)} ({split})",
                      yaxis_autorange="reversed")
    return fig


def intensity_histograms_info(sites: Sequence[Site], split: str = "train", bins: int = 32,
                              max_samples: int | None = 2000, seed: int = 0) -> pd.DataFrame:
    """Columns site, bin_left, bin_right, density of pixel intensities per site.

    Teaching view: it reads up to ``max_samples`` images per site (None: all of them),
    drawn from each site's ``split`` at random by ``seed``. ``sites`` is a list of Site;
    ``bins`` equal-width bins cover ``[0, 1]``, each site's density integrating to 1.
    """
    from ..data.stats import intensity_histogram

    return intensity_histogram(sites, split, bins, max_samples, seed)


def intensity_histograms(sites: Sequence[Site], split: str = "train", bins: int = 32,
                         max_samples: int | None = 2000, seed: int = 0) -> go.Figure:
    """Overlaid pixel-intensity histograms, one line per site: acquisition shift shows
    as sites whose curves differ (brighter, more contrast, noisier, blurrier).

    ``sites``, ``split``, ``bins``, ``max_samples`` and ``seed`` are as for
    :func:`intensity_histograms_info`.
    """
    info = intensity_histograms_info(sites, split, bins, max_samples, seed)
    fig = go.Figure()
    for i, (site, rows) in enumerate(info.groupby("site", sort=False)):
        centre = (rows["bin_left"] + rows["bin_right"]) / 2
        fig.add_scatter(x=centre, y=rows["density"], name=str(site), mode="lines",
                        line=dict(shape="hvh", width=2, color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(title=f"Pixel intensities per site ({split})", xaxis_title="intensity",
                      yaxis_title="density", xaxis_range=[0, 1])
    return fig


# -- a sweep of runs: accuracy against heterogeneity ------------------------------------
