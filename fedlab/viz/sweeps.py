"""Figures of :func:`fedlab.sweep` frames: the mean of a metric per configuration with
its confidence interval over seeds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..sweep_stats import sweep_summary
from .palette import PALETTE

__all__ = ["sweep_ci", "sweep_ci_info"]


def sweep_ci_info(frame: pd.DataFrame, x: str, color: str | None = None,
                  metric: str = "accuracy", level: float = 0.95) -> pd.DataFrame:
    """Mean, n and confidence interval of ``metric`` for each (``x``, ``color``) pair.

    Parameters
    ----------
    frame : DataFrame
        One row per run (:func:`fedlab.sweep`).
    x : str
        The column on the x axis (e.g. ``"partition"``).
    color : str, optional
        The column drawn as one series per value (e.g. ``"strategy"``).
    metric : str
        The column summarised (``"accuracy"``, ``"auc"``, ``"site_worst"``, ...).
    level : float
        Coverage of the interval (default 0.95); see :func:`fedlab.sweep_summary`.

    Returns
    -------
    DataFrame
        :func:`fedlab.sweep_summary` grouped by ``x`` (and ``color``): n, mean, std,
        half_width (NaN for one run), low, high.

    Raises
    ------
    ValueError
        When another swept column varies too (its runs would be pooled): filter the
        frame or draw that column as ``color``.
    """
    by = [x] if color is None else [x, color]
    for col in (*by, metric):
        if col not in frame:
            raise ValueError(f"{col!r} is not a column; the columns are {list(frame.columns)}")
    axes = frame.attrs.get("options") or list(frame.columns[:list(frame.columns).index("seed")]
                                              if "seed" in frame else [])
    extra = [a for a in axes if a not in by and frame[a].nunique(dropna=False) > 1]
    if extra:
        raise ValueError(f"the sweep also varies {extra}: select one value of each "
                         f"(frame[frame[{extra[0]!r}] == ...]) or pass color={extra[0]!r}")
    return sweep_summary(frame, by=by, metric=metric, level=level)


def sweep_ci(frame: pd.DataFrame, x: str, color: str | None = None,
             metric: str = "accuracy", level: float = 0.95, title: str = "") -> go.Figure:
    """``metric`` per configuration: the mean over seeds with its confidence interval as
    error bars, one series per value of ``color``, side by side at each ``x``.

    ``frame``, ``x``, ``color``, ``metric`` and ``level`` are as for
    :func:`sweep_ci_info`; ``title`` is the figure's title (default: the metric, the
    interval and the number of seeds). A configuration of one run has no bar.
    """
    info = sweep_ci_info(frame, x, color, metric, level)
    fig = go.Figure()
    groups = [(None, info)] if color is None else info.groupby(color, sort=False)
    for i, (name, rows) in enumerate(groups):
        fig.add_scatter(
            x=rows[x].astype(str), y=rows["mean"], mode="markers",
            name=metric if name is None else str(name),
            marker=dict(size=10, color=PALETTE[i % len(PALETTE)]),
            error_y=dict(type="data", array=rows["half_width"].fillna(0), visible=True),
            customdata=rows[["n", "low", "high"]].to_numpy(),
            hovertemplate="mean %{y:.3f}<br>CI [%{customdata[1]:.3f}, "
                          "%{customdata[2]:.3f}]<br>n = %{customdata[0]}<extra></extra>")
    n = sorted(set(info["n"]))
    seeds = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
    fig.update_layout(
        title=title or f"{metric}: mean and {level:.0%} CI over {seeds} seeds",
        xaxis_title=x, yaxis_title=metric, scattermode="group", legend_title_text=color or "")
    return fig
