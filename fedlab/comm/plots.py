"""Figures of communication cost: compute -> ``*_info()`` -> ``plot`` (a ``go.Figure``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from ..history import GLOBAL, History
from .network import Link, timeline
from .schedule import arrivals, elapsed, jobs

__all__ = ["accuracy_vs_mb_info", "accuracy_vs_mb", "bytes_per_round_info", "bytes_per_round",
           "accuracy_vs_time_info", "accuracy_vs_time", "stragglers", "job_timeline",
           "staleness_histogram"]


def _cumulative_mb(history: History, direction: str | None) -> pd.Series:
    """MB sent in rounds ``<= r`` (index: round, from 0)."""
    per = pd.Series(0.0, index=range(history.last_round + 1))
    for r in history.ledger:
        if direction in (None, r["direction"]):
            per[r["round"]] += r["bytes"] / 1e6
    return per.cumsum()


def accuracy_vs_mb_info(histories: Mapping[str, History], metric: str = "accuracy",
                        direction: str | None = "up") -> pd.DataFrame:
    """Per run and evaluated round: the global test ``metric`` and the MB sent so far
    (``direction``: ``"up"``, ``"down"`` or None for both)."""
    rows = []
    for label, h in histories.items():
        mb = _cumulative_mb(h, direction)
        for rnd, value in zip(*h.series(metric, GLOBAL), strict=True):
            rows.append({"run": label, "round": int(rnd), "mb": float(mb[int(rnd)]),
                         metric: value})
    return pd.DataFrame(rows)


def accuracy_vs_mb(histories: Mapping[str, History], metric: str = "accuracy",
                   direction: str | None = "up", log_x: bool = True) -> go.Figure:
    """One curve per run: global test ``metric`` against cumulative MB sent."""
    info = accuracy_vs_mb_info(histories, metric, direction)
    fig = go.Figure()
    for label, part in info.groupby("run", sort=False):
        part = part[part["mb"] > 0] if log_x else part
        fig.add_trace(go.Scatter(x=part["mb"], y=part[metric], mode="lines+markers",
                                 name=str(label), customdata=part["round"],
                                 hovertemplate="round %{customdata}: %{y:.3f} at %{x:.2f} MB"))
    what = {"up": "uplink ", "down": "downlink ", None: ""}[direction]
    fig.update_layout(title=f"Test {metric} against {what}traffic",
                      xaxis_title=f"cumulative {what}MB", yaxis_title=metric,
                      xaxis_type="log" if log_x else "linear")
    return fig


def bytes_per_round_info(history: History) -> pd.DataFrame:
    """MB per round, site and direction (from the ledger)."""
    df = history.to_frame("ledger")
    if df.empty:
        return pd.DataFrame(columns=["round", "site", "direction", "mb"])
    df["mb"] = df["bytes"] / 1e6
    return df.groupby(["round", "site", "direction"], as_index=False)["mb"].sum()


def bytes_per_round(history: History) -> go.Figure:
    """Stacked bars: MB each site sent (up) and received (down) in each round."""
    info = bytes_per_round_info(history)
    fig = go.Figure()
    for (site, direction), part in info.groupby(["site", "direction"], sort=False):
        fig.add_trace(go.Bar(x=part["round"], y=part["mb"], name=f"{site} {direction}",
                             offsetgroup=direction, legendgroup=direction))
    fig.update_layout(barmode="stack", title="Traffic per round (left: down, right: up)"
                      if info["direction"].nunique() > 1 else "Traffic per round",
                      xaxis_title="round", yaxis_title="MB")
    return fig


def accuracy_vs_time_info(histories: Mapping[str, History],
                          network: str | Link | Mapping | None = None,
                          metric: str = "accuracy") -> pd.DataFrame:
    """Per run and evaluated round: global test ``metric`` and simulated seconds so far
    (over ``network``; default each run's own clock, which also covers asynchronous runs
    and the time waited for offline sites)."""
    rows = []
    for label, h in histories.items():
        if network is None:
            clock = elapsed(h)
        else:
            per = timeline(h, network).groupby("round")["round_s"].max()
            clock = per.reindex(range(h.last_round + 1), fill_value=0.0).cumsum()
        for rnd, value in zip(*h.series(metric, GLOBAL), strict=True):
            rows.append({"run": label, "round": int(rnd), "seconds": float(clock[int(rnd)]),
                         metric: value})
    return pd.DataFrame(rows)


def accuracy_vs_time(histories: Mapping[str, History],
                     network: str | Link | Mapping | None = None, metric: str = "accuracy",
                     target: float | None = None) -> go.Figure:
    """One curve per run: global test ``metric`` against simulated wall-clock time; a
    dashed line at ``target`` shows the time-to-accuracy of each run."""
    info = accuracy_vs_time_info(histories, network, metric)
    fig = go.Figure()
    for label, part in info.groupby("run", sort=False):
        fig.add_trace(go.Scatter(x=part["seconds"] / 60, y=part[metric], mode="lines+markers",
                                 name=str(label), customdata=part["round"],
                                 hovertemplate="round %{customdata}: %{y:.3f} at %{x:.1f} min"))
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", annotation_text=f"target {target:g}")
    fig.update_layout(title=f"Test {metric} against simulated time", yaxis_title=metric,
                      xaxis_title="simulated minutes")
    return fig


def stragglers(history: History, network: str | Link | Mapping | None = None) -> go.Figure:
    """Per round and site: download, compute and upload seconds stacked; the round lasts
    as long as the tallest bar (the straggler, outlined)."""
    info = timeline(history, network)
    fig = go.Figure()
    colors = {"down_s": "#636efa", "compute_s": "#00cc96", "up_s": "#ef553b"}
    for i, site in enumerate(dict.fromkeys(info["site"])):
        part = info[info["site"] == site]
        for col, color in colors.items():
            fig.add_trace(go.Bar(
                x=part["round"], y=part[col], name=col[:-2], offsetgroup=str(i),
                legendgroup=col, showlegend=i == 0, marker_color=color,
                marker_line_width=[3 if s else 0 for s in part["straggler"]],
                customdata=[site] * len(part),
                hovertemplate="%{customdata}, round %{x}: %{y:.2f} s"))
    fig.update_layout(barmode="stack", title="Seconds per site and round (outlined: straggler)",
                      xaxis_title="round", yaxis_title="simulated seconds")
    return fig


def job_timeline(history: History, title: str = "", hours: bool = False) -> go.Figure:
    """Sites on rows, simulated time across: each job's download, local training and
    upload as bars (:func:`fedlab.comm.schedule.jobs`), for a synchronous or an
    asynchronous run.

    Parameters
    ----------
    history : History
        A run with a network.
    title : str
        The figure's title (default: the strategy).
    hours : bool
        Time in hours (long runs with availability) instead of seconds.
    """
    info = jobs(history)
    scale, unit = (3600.0, "h") if hours else (1.0, "s")
    fig = go.Figure()
    colors = {"down_s": "#636efa", "compute_s": "#00cc96", "up_s": "#ef553b"}
    offset = info["start_s"].copy()
    for col, color in colors.items():
        fig.add_trace(go.Bar(y=info["site"], x=info[col] / scale, base=offset / scale,
                             orientation="h", name=col[:-2], marker_color=color,
                             customdata=info["round"],
                             hovertemplate=f"%{{y}}, round %{{customdata}}: %{{x:.3f}} {unit}"))
        offset = offset + info[col]
    fig.update_layout(barmode="overlay", title=title or f"Jobs of {history.config.get('strategy')}",
                      xaxis_title=f"simulated time ({unit})",
                      yaxis=dict(title="site", autorange="reversed"), bargap=0.35)
    return fig


def staleness_histogram(histories: Mapping[str, History]) -> go.Figure:
    """How stale the updates of asynchronous runs were: one bar group per staleness.

    Parameters
    ----------
    histories : mapping of name to History
        Asynchronous runs.
    """
    fig = go.Figure()
    for label, h in histories.items():
        counts = arrivals(h)["staleness"].value_counts().sort_index()
        fig.add_bar(x=counts.index.tolist(), y=counts.tolist(), name=str(label))
    fig.update_layout(barmode="group", title="Staleness of the updates used",
                      xaxis_title="staleness (versions since the site's start)",
                      yaxis_title="updates")
    return fig
