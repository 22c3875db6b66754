"""Figures of runs: learning curves, run comparisons, cross-site scores, sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from ..history import GLOBAL, History
from .palette import PALETTE


def learning_curves_info(history: History, metric: str = "accuracy",
                         split: str = "test") -> pd.DataFrame:
    """Columns round, site, value for the global model and every site.

    ``history`` is a run's History; ``metric`` a recorded metric (``"accuracy"``,
    ``"loss"``, ``"auc"``, ...); ``split`` the evaluated split (e.g. ``"test"``).
    """
    frame = history.to_frame("metrics")
    frame = frame[frame["split"] == split]
    return frame[["round", "site", metric]].rename(columns={metric: "value"})


def learning_curves(history: History, metric: str = "accuracy", split: str = "test",
                    per_site: bool = True) -> go.Figure:
    """``metric`` against round: the global model in bold, each site thinner.

    ``history``, ``metric`` and ``split`` are as for :func:`learning_curves_info`;
    ``per_site=False`` draws the global curve only.
    """
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
    """Columns run, round, value of the global ``metric`` for several runs.

    ``histories`` maps a run name to its History; ``split`` is the evaluated split.
    """
    rows = []
    for name, h in histories.items():
        rounds, values = h.series(metric, GLOBAL, split)
        rows += [{"run": name, "round": int(r), "value": float(v)}
                 for r, v in zip(rounds, values, strict=True)]
    return pd.DataFrame(rows)


def compare_runs(histories: Mapping[str, History], metric: str = "accuracy",
                 split: str = "test") -> go.Figure:
    """One global learning curve per run, e.g. centralised vs local-only vs FedAvg.

    ``histories``, ``metric`` and ``split`` are as for :func:`compare_runs_info`.
    """
    info = compare_runs_info(histories, metric, split)
    fig = go.Figure()
    for i, (name, rows) in enumerate(info.groupby("run", sort=False)):
        fig.add_scatter(x=rows["round"], y=rows["value"], name=str(name), mode="lines+markers",
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(title=f"Global {metric} ({split})", xaxis_title="round",
                      yaxis_title=metric)
    return fig


def cross_site_heatmap(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Heatmap of :func:`fedlab.cross_site`: rows the model's owner, columns the test site.

    ``frame`` is that table (the colour scale spans ``[0, 1]``); ``title`` the figure's
    title (default "Each model tested at every site").
    """
    fig = go.Figure(go.Heatmap(
        z=frame.to_numpy(), x=[str(c) for c in frame.columns], y=[str(i) for i in frame.index],
        colorscale="Viridis", zmin=0, zmax=1, text=frame.round(2).to_numpy(),
        texttemplate="%{text}", colorbar=dict(title="value")))
    fig.update_layout(title=title or "Each model tested at every site",
                      xaxis_title="tested at", yaxis_title="model of",
                      yaxis_autorange="reversed")
    return fig


# -- heterogeneity: label skew and acquisition shift -------------------------------------


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
    title, xaxis_title : str
        Titles of the figure (default "Accuracy across the sweep") and of its x axis.
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
