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
    "cross_site_heatmap", "label_heatmap", "label_skew_info", "label_skew",
    "site_distances_info", "site_distances", "intensity_histograms_info",
    "intensity_histograms", "sweep_info", "sweep",
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


def cross_site_heatmap(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Heatmap of :func:`fedlab.cross_site`: rows the model's owner, columns the test site."""
    fig = go.Figure(go.Heatmap(
        z=frame.to_numpy(), x=[str(c) for c in frame.columns], y=[str(i) for i in frame.index],
        colorscale="Viridis", zmin=0, zmax=1, text=frame.round(2).to_numpy(),
        texttemplate="%{text}", colorbar=dict(title="value")))
    fig.update_layout(title=title or "Each model tested at every site",
                      xaxis_title="tested at", yaxis_title="model of",
                      yaxis_autorange="reversed")
    return fig


# -- heterogeneity: label skew and acquisition shift -------------------------------------

_METRIC_NAMES = {"js": "Jensen-Shannon distance", "tv": "total variation",
                 "emd": "EMD (sum |p - q|)"}


def label_heatmap(sites: Sequence[Site], split: str = "train",
                  normalize: bool = True) -> go.Figure:
    """Sites x classes heatmap of label shares (or counts if not ``normalize``).

    The numbers are :func:`label_distribution_info`'s.
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
    """Columns site, n, distance: each site's label distribution vs the pooled one."""
    from .data.stats import distance_to_global

    return distance_to_global(sites, metric, split)  # type: ignore[arg-type]


def label_skew(sites: Sequence[Site], metric: str = "js", split: str = "train") -> go.Figure:
    """Bars: how far each site's labels are from the global distribution."""
    info = label_skew_info(sites, metric, split)
    fig = go.Figure(go.Bar(x=info["site"], y=info["distance"], marker_color=PALETTE[0],
                           customdata=info["n"], hovertemplate="%{x}: %{y:.3f} (n=%{customdata})"))
    fig.update_layout(title=f"Label skew: {_METRIC_NAMES.get(metric, metric)} to the global "
                      f"labels ({split}), mean {info['distance'].mean():.3f}",
                      xaxis_title="site", yaxis_title=metric)
    return fig


def site_distances_info(sites: Sequence[Site], metric: str = "js",
                        split: str = "train") -> pd.DataFrame:
    """Columns site_a, site_b, distance between the sites' label distributions."""
    from .data.stats import distance_matrix

    matrix = distance_matrix(sites, metric, split)  # type: ignore[arg-type]
    return (matrix.rename_axis(index="site_a", columns="site_b").stack()
            .rename("distance").reset_index())


def site_distances(sites: Sequence[Site], metric: str = "js",
                   split: str = "train") -> go.Figure:
    """Site-to-site heatmap of label distances (0: same label distribution)."""
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

    Teaching view: it reads up to ``max_samples`` images per site.
    """
    from .data.stats import intensity_histogram

    return intensity_histogram(sites, split, bins, max_samples, seed)


def intensity_histograms(sites: Sequence[Site], split: str = "train", bins: int = 32,
                         max_samples: int | None = 2000, seed: int = 0) -> go.Figure:
    """Overlaid pixel-intensity histograms, one line per site: acquisition shift shows
    as sites whose curves differ (brighter, more contrast, noisier, blurrier)."""
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

_SWEEP_SERIES = {"accuracy": "FedAvg: all hospitals' patients",
                 "worst site accuracy": "FedAvg: worst-served hospital"}


def sweep_info(table: pd.DataFrame, runs: Sequence[str] | None = None,
               columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Long form of a :func:`fedlab.compare` table for the runs of a sweep.

    Parameters
    ----------
    table : DataFrame
        ``fl.compare(...)`` output, one row per run.
    runs : list of str, optional
        The rows of the sweep, in order (default: all of them).
    columns : dict, optional
        Column of ``table`` → legend name of its line (default: pooled accuracy and
        worst-served site).

    Returns
    -------
    DataFrame
        Columns run, series, value, collapsed (False where ``table`` has no
        ``collapsed`` column), one row per run and series.
    """
    runs = list(table.index if runs is None else runs)
    columns = dict(_SWEEP_SERIES if columns is None else columns)
    collapsed = (table["collapsed"] if "collapsed" in table
                 else pd.Series(False, index=table.index))
    rows = [{"run": run, "series": name, "value": float(table.loc[run, col]),
             "collapsed": bool(collapsed.loc[run])}
            for col, name in columns.items() for run in runs]
    return pd.DataFrame(rows)


def sweep(table: pd.DataFrame, runs: Sequence[str] | None = None,
          references: Mapping[str, float] | None = None,
          points: Mapping[str, tuple[str, float]] | None = None,
          columns: Mapping[str, str] | None = None, title: str = "",
          xaxis_title: str = "") -> go.Figure:
    """Accuracy against heterogeneity: one line per series over the runs of a sweep.

    Reference values (e.g. a centralised run) are dashed horizontal lines, the
    ``majority`` baseline of ``table`` (always answering the most frequent class) is a
    dotted one, and runs that collapsed to a constant predictor are marked with a cross
    and the word "collapsed", so that their accuracy is not read as a finding.

    Parameters
    ----------
    table, runs, columns
        As for :func:`sweep_info`.
    references : dict, optional
        Label → value, drawn as dashed horizontal lines.
    points : dict, optional
        Label → (run on the x axis, value), drawn as single diamonds (e.g. a centralised
        run on the most shifted data).
    """
    info = sweep_info(table, runs, columns)
    fig = go.Figure()
    for i, (name, rows) in enumerate(info.groupby("series", sort=False)):
        fig.add_scatter(x=rows["run"], y=rows["value"], mode="lines+markers", name=str(name),
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    down = info[info["collapsed"]].drop_duplicates("run", keep="first")
    if len(down):
        fig.add_scatter(x=down["run"], y=down["value"], mode="markers+text", text="collapsed",
                        textposition="top center", name="collapsed (one answer for all)",
                        marker=dict(symbol="x", size=14, color="black"))
    for label, (run, value) in (points or {}).items():
        fig.add_scatter(x=[run], y=[value], mode="markers", name=label,
                        marker=dict(symbol="diamond", size=12, color="black"))
    for label, value in (references or {}).items():
        fig.add_hline(y=value, line_dash="dash", line_color="black", annotation_text=label,
                      annotation_position="bottom right")
    if "majority" in table:
        fig.add_hline(y=float(table["majority"].max()), line_dash="dot", line_color="grey",
                      annotation_text="majority class (always the same answer)",
                      annotation_position="top right")
    fig.update_layout(title=title or "Accuracy across the sweep", xaxis_title=xaxis_title,
                      yaxis_title="accuracy", yaxis_range=[0, 1.05])
    return fig
