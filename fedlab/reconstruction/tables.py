"""PSNR, SSIM and NMSE of reconstruction runs per site, and against acceleration."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..data.acquisition import Acquisition
from ..evaluation import site_table
from ..history import GLOBAL, History
from ..viz.palette import PALETTE

__all__ = ["ZERO_FILLED", "UNITS", "quality_table", "plot_quality_by_site", "acceleration_info",
           "plot_quality_vs_acceleration"]

#: the column of the zero-filled baseline in :func:`quality_table`
ZERO_FILLED = "zero-filled"
#: the axis title of each metric
UNITS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "nmse": "NMSE"}


def quality_table(runs: Mapping[str, History], metric: str = "psnr",
                  split: str = "test") -> pd.DataFrame:
    """The final ``metric`` of every site (rows, then ``"global"``) in every run
    (columns), the zero-filled baseline first.

    Parameters
    ----------
    runs : mapping of name to History
        Reconstruction runs on the same sites.
    metric : {"psnr", "ssim", "nmse"}
        The image-quality metric.
    split : str
        The split scored (``"test"`` by default).
    """
    if metric not in UNITS:
        raise ValueError(f"metric must be one of {sorted(UNITS)}, got {metric!r}")
    hint = ": was it a reconstruction run (sites from fl.data.undersample)?"
    frame = site_table(runs, metric, split, hint)
    first = next(iter(runs.values()))
    frame.insert(0, ZERO_FILLED, site_table({ZERO_FILLED: first}, f"{metric}_zero_filled",
                                            split, hint)[ZERO_FILLED])
    return frame


def plot_quality_by_site(frame: pd.DataFrame, metric: str = "psnr",
                         title: str = "") -> go.Figure:
    """Grouped bars of :func:`quality_table`: one group per site, one bar per run.

    Parameters
    ----------
    frame : DataFrame
        A table from :func:`quality_table`.
    metric : str
        Its metric (for the axis title).
    title : str
        The figure's title (default: the metric per site).
    """
    fig = go.Figure()
    for i, run in enumerate(frame.columns):
        fig.add_bar(x=list(frame.index), y=frame[run].round(3).tolist(), name=str(run),
                    marker_color="#bbbbbb" if run == ZERO_FILLED else PALETTE[i % len(PALETTE)])
    low = float(np.nanmin(frame.to_numpy())) if metric == "psnr" else 0.0
    fig.update_layout(barmode="group", title=title or f"{UNITS.get(metric, metric)} per site",
                      yaxis=dict(title=UNITS.get(metric, metric),
                                 range=[np.floor(low) - 1, None] if metric == "psnr" else None),
                      xaxis_title="site")
    return fig


def acceleration_info(frame: pd.DataFrame, scanners: Mapping[str, Acquisition]) -> pd.DataFrame:
    """The sites of :func:`quality_table` against their acceleration: one row per site
    and run (``site``, ``acceleration``, ``run``, ``value``).

    Parameters
    ----------
    frame : DataFrame
        A table from :func:`quality_table`.
    scanners : mapping of site name to Acquisition
        What each site used (``Federation.scanners`` of :func:`fedlab.data.undersample`).
    """
    rows = [{"site": site, "acceleration": scanners[site].acceleration, "run": run,
             "value": float(frame.at[site, run])}
            for site in frame.index if site != GLOBAL for run in frame.columns]
    return pd.DataFrame(rows).sort_values(["run", "acceleration"], kind="stable")


def plot_quality_vs_acceleration(info: pd.DataFrame, metric: str = "psnr") -> go.Figure:
    """One line per run through its sites' quality, by acceleration (log axis).

    Parameters
    ----------
    info : DataFrame
        What :func:`acceleration_info` returns.
    metric : str
        The metric of the values (for the axis title).
    """
    fig = go.Figure()
    for i, (run, part) in enumerate(info.groupby("run", sort=False)):
        fig.add_scatter(x=part["acceleration"], y=part["value"].round(3), mode="lines+markers",
                        name=str(run), text=part["site"], line=dict(
                            color="#999999" if run == ZERO_FILLED else PALETTE[i % len(PALETTE)],
                            dash="dot" if run == ZERO_FILLED else "solid"))
    fig.update_layout(title=f"{UNITS.get(metric, metric)} against acceleration",
                      xaxis=dict(title="acceleration (x)", type="log"),
                      yaxis_title=UNITS.get(metric, metric))
    return fig
