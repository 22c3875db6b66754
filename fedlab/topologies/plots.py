"""Figures to compare topologies: who sent what to whom, consensus, accuracy, cost.

Each figure is compute → info → figure: ``*_info`` returns a DataFrame computed from
Histories only, the plain name returns a ``go.Figure``; nothing calls ``.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..history import GLOBAL, History
from ..viz import PALETTE

__all__ = ["messages_info", "messages", "consensus_info", "consensus", "site_accuracy_info",
           "site_accuracy", "communication_info", "communication"]

SERVER = "server"


def messages_info(history: History, round: int | None = None) -> pd.DataFrame:
    """Who sent to whom in ``round`` (default: the last round with messages): columns
    sender, receiver, messages, bytes. A ledger row ``up`` goes from its site to its
    peer, a row ``down`` from its peer to its site."""
    rows = history.ledger
    if round is None:
        round = max((r["round"] for r in rows), default=0)
    out = [{"sender": r["site"] if r["direction"] == "up" else r["peer"],
            "receiver": r["peer"] if r["direction"] == "up" else r["site"],
            "bytes": r["bytes"]} for r in rows if r["round"] == round]
    if not out:
        return pd.DataFrame(columns=["sender", "receiver", "messages", "bytes"])
    frame = pd.DataFrame(out).groupby(["sender", "receiver"], sort=False)["bytes"]
    return frame.agg(messages="size", bytes="sum").reset_index()


def _layout(names: list[str], with_server: bool) -> dict[str, tuple[float, float]]:
    angle = np.pi / 2 - 2 * np.pi * np.arange(len(names)) / max(len(names), 1)
    pos = {n: (float(np.cos(a)), float(np.sin(a))) for n, a in zip(names, angle, strict=True)}
    if with_server:
        pos[SERVER] = (0.0, 0.0)
    return pos


def messages(history: History, round: int | None = None, title: str | None = None) -> go.Figure:
    """The site graph of one round: an arrow per sender → receiver, as wide as the bytes
    it carried (hover for the numbers); the server, if any, in the middle."""
    info = messages_info(history, round)
    names = list(history.config.get("sites") or history.sites)
    names += [n for n in pd.unique(info[["sender", "receiver"]].values.ravel())
              if n not in names and n != SERVER]
    pos = _layout(names, with_server=SERVER in set(info["sender"]) | set(info["receiver"]))
    fig = go.Figure()
    top = info["bytes"].max() if len(info) else 1
    for r in info.itertuples():
        (x0, y0), (x1, y1) = pos[r.sender], pos[r.receiver]
        nx, ny = y0 - y1, x1 - x0  # shift sideways so the two directions do not overlap
        norm = np.hypot(nx, ny) or 1.0
        dx, dy = 0.03 * nx / norm, 0.03 * ny / norm
        fig.add_annotation(x=x0 + 0.88 * (x1 - x0) + dx, y=y0 + 0.88 * (y1 - y0) + dy,
                           ax=x0 + 0.12 * (x1 - x0) + dx, ay=y0 + 0.12 * (y1 - y0) + dy,
                           xref="x", yref="y", axref="x", ayref="y", text="", showarrow=True,
                           arrowhead=2, arrowwidth=1 + 4 * r.bytes / top,
                           arrowcolor="rgba(76,120,168,0.7)")
    sent = info.groupby("sender")["bytes"].sum()
    got = info.groupby("receiver")["bytes"].sum()
    nodes = list(pos)
    fig.add_scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        text=nodes, textposition="top center", showlegend=False,
        marker=dict(size=[26 if n == SERVER else 18 for n in nodes],
                    color=["#E45756" if n == SERVER else PALETTE[0] for n in nodes]),
        hovertext=[f"{n}: sent {sent.get(n, 0) / 1e6:.2f} MB, received "
                   f"{got.get(n, 0) / 1e6:.2f} MB" for n in nodes], hoverinfo="text")
    rnd = round if round is not None else max((r["round"] for r in history.ledger), default=0)
    fig.update_layout(
        title=title or f"Messages in round {rnd}: {int(info['messages'].sum()) if len(info) else 0}"
                       f" messages, {info['bytes'].sum() / 1e6:.2f} MB",
        xaxis=dict(visible=False, range=[-1.35, 1.35]),
        yaxis=dict(visible=False, range=[-1.35, 1.35], scaleanchor="x"),
        width=420, height=420, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def consensus_info(histories: Mapping[str, History]) -> pd.DataFrame:
    """Consensus distance per round of every run that records it: columns topology,
    round, consensus_distance (runs with one global model, e.g. the star, have none)."""
    rows = [{"topology": label, "round": r["round"], "consensus_distance": r["consensus_distance"]}
            for label, h in histories.items() for r in h.rounds if "consensus_distance" in r]
    return pd.DataFrame(rows, columns=["topology", "round", "consensus_distance"])


def consensus(histories: Mapping[str, History]) -> go.Figure:
    """Consensus distance over rounds, one line per run (log scale)."""
    info = consensus_info(histories)
    fig = go.Figure()
    for i, (label, rows) in enumerate(info.groupby("topology", sort=False)):
        fig.add_scatter(x=rows["round"], y=rows["consensus_distance"], name=label,
                        mode="lines+markers", line_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(title="How far the sites' models are from their average",
                      xaxis_title="round", yaxis_title="consensus distance", yaxis_type="log")
    return fig


def site_accuracy_info(histories: Mapping[str, History], metric: str = "accuracy",
                       split: str = "test") -> pd.DataFrame:
    """``metric`` of every site's model on its own ``split`` per round, per run:
    columns topology, site, round, value."""
    rows = [{"topology": label, "site": r["site"], "round": r["round"], "value": r[metric]}
            for label, h in histories.items() for r in h.metrics
            if r["split"] == split and r["site"] != GLOBAL]
    return pd.DataFrame(rows, columns=["topology", "site", "round", "value"])


def site_accuracy(histories: Mapping[str, History], metric: str = "accuracy",
                  split: str = "test") -> go.Figure:
    """One panel per run, one line per site: ``metric`` on the site's own ``split``."""
    info = site_accuracy_info(histories, metric, split)
    labels = list(histories)
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, shared_yaxes=True)
    sites = list(pd.unique(info["site"]))
    for col, label in enumerate(labels, start=1):
        for k, site in enumerate(sites):
            rows = info[(info["topology"] == label) & (info["site"] == site)]
            fig.add_scatter(x=rows["round"], y=rows["value"], name=site, legendgroup=site,
                            showlegend=col == 1, mode="lines",
                            line_color=PALETTE[k % len(PALETTE)], row=1, col=col)
    fig.update_layout(title=f"{metric} of each site's model on its own {split} split",
                      height=330, legend_title="site")
    fig.update_yaxes(title_text=metric, row=1, col=1)
    return fig


def communication_info(histories: Mapping[str, History], metric: str = "accuracy",
                       split: str = "test") -> pd.DataFrame:
    """One row per run: messages, MB, final ``metric`` (global row), worst site's
    ``metric``, and the last consensus distance (0 for runs with one global model)."""
    rows = []
    for label, h in histories.items():
        cd = [r["consensus_distance"] for r in h.rounds if "consensus_distance" in r]
        rows.append({"topology": label, "messages": len(h.ledger),
                     "MB": h.bytes() / 1e6, metric: h.final(metric, GLOBAL, split),
                     f"worst site {metric}": float(h.per_site(metric, split=split).min()),
                     "consensus_distance": cd[-1] if cd else 0.0})
    return pd.DataFrame(rows).set_index("topology")


def communication(histories: Mapping[str, History], metric: str = "accuracy",
                  split: str = "test") -> go.Figure:
    """Cost against quality: one point per run, MB sent in total vs final ``metric``."""
    info = communication_info(histories, metric, split)
    fig = go.Figure()
    for i, (label, r) in enumerate(info.iterrows()):
        fig.add_scatter(x=[r["MB"]], y=[r[metric]], name=label, mode="markers+text",
                        text=[label], textposition="top center",
                        marker=dict(size=12, color=PALETTE[i % len(PALETTE)]),
                        hovertext=f"{label}: {int(r['messages'])} messages, {r['MB']:.1f} MB",
                        hoverinfo="text")
    fig.update_layout(title=f"Communication vs {metric}", xaxis_title="MB sent in total",
                      yaxis_title=f"{metric} ({split}, every site with its own model)",
                      showlegend=False)
    return fig
