"""plotly figures. Each plot is compute → info → figure: ``*_info`` returns the numbers
(a DataFrame, testable without rendering), the plain name returns a ``go.Figure``.
Nothing here calls ``.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .history import GLOBAL, History
from .sites import Site

__all__ = [
    "label_distribution_info", "label_distribution", "sample_images",
    "learning_curves_info", "learning_curves", "compare_runs_info", "compare_runs",
]

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2",
           "#FF9DA6", "#9D755D", "#BAB0AC")


def label_distribution_info(sites: Sequence[Site], split: str = "train") -> pd.DataFrame:
    """Samples per class at each site: columns site, class, count, share."""
    rows = []
    for site in sites:
        counts = site.label_counts(split)
        total = max(int(counts.sum()), 1)
        rows += [{"site": site.name, "class": site.classes[c], "count": int(n),
                  "share": n / total} for c, n in enumerate(counts)]
    return pd.DataFrame(rows)


def label_distribution(sites: Sequence[Site], split: str = "train",
                       normalize: bool = False) -> go.Figure:
    """Stacked bars of the classes held by each site (counts, or shares if ``normalize``)."""
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
    """
    titles, images = [], []
    for site in sites:
        part = site.peek(per_site, split, seed)
        for k in range(per_site):
            if k < len(part):
                images.append(part.images[k])
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


def learning_curves_info(history: History, metric: str = "accuracy",
                         split: str = "test") -> pd.DataFrame:
    """Columns round, site, value for the global model and every site."""
    frame = history.to_frame("metrics")
    frame = frame[frame["split"] == split]
    return frame[["round", "site", metric]].rename(columns={metric: "value"})


def learning_curves(history: History, metric: str = "accuracy", split: str = "test",
                    per_site: bool = True) -> go.Figure:
    """``metric`` against round: the global model in bold, each site thinner."""
    info = learning_curves_info(history, metric, split)
    fig = go.Figure()
    if per_site:
        for i, site in enumerate(history.sites):
            rows = info[info["site"] == site]
            fig.add_scatter(x=rows["round"], y=rows["value"], name=site, mode="lines",
                            line=dict(width=1, color=PALETTE[i % len(PALETTE)]), opacity=0.7)
    rows = info[info["site"] == GLOBAL]
    fig.add_scatter(x=rows["round"], y=rows["value"], name="global", mode="lines+markers",
                    line=dict(width=3, color="black"))
    fig.update_layout(title=f"{metric} ({split}) — {history.config.get('strategy', '')}",
                      xaxis_title="round", yaxis_title=metric)
    return fig


def compare_runs_info(histories: Mapping[str, History], metric: str = "accuracy",
                      split: str = "test") -> pd.DataFrame:
    """Columns run, round, value of the global ``metric`` for several runs."""
    rows = []
    for name, h in histories.items():
        rounds, values = h.series(metric, GLOBAL, split)
        rows += [{"run": name, "round": int(r), "value": float(v)}
                 for r, v in zip(rounds, values, strict=True)]
    return pd.DataFrame(rows)


def compare_runs(histories: Mapping[str, History], metric: str = "accuracy",
                 split: str = "test") -> go.Figure:
    """One global learning curve per run, e.g. centralised vs local-only vs FedAvg."""
    info = compare_runs_info(histories, metric, split)
    fig = go.Figure()
    for i, (name, rows) in enumerate(info.groupby("run", sort=False)):
        fig.add_scatter(x=rows["round"], y=rows["value"], name=str(name), mode="lines+markers",
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(title=f"Global {metric} ({split})", xaxis_title="round",
                      yaxis_title=metric)
    return fig
