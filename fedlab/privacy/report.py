"""Figures for the privacy lesson: the budget over rounds, and what secure aggregation
lets the server see (compute with ``*_info``, then plot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .accountant import epsilon

__all__ = ["epsilon_info", "plot_epsilon", "masking_info", "plot_masking"]


def epsilon_info(noise_multipliers: Sequence[float], rounds: int, sample_rate: float = 1.0,
                 delta: float = 1e-5, accountant: str = "rdp") -> pd.DataFrame:
    """Epsilon after each round 1..``rounds`` for each noise multiplier (long format:
    columns ``noise_multiplier``, ``round``, ``epsilon``).

    Parameters
    ----------
    noise_multipliers : sequence of float
        The noise multipliers (sigma) to compare, one line each.
    rounds : int
        Last round, >= 1.
    sample_rate, delta, accountant
        As for :func:`epsilon`: the fraction of sites per round (default 1), the target
        delta (default 1e-5) and ``"rdp"`` (default) or ``"prv"``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rows = [{"noise_multiplier": float(s), "round": r,
             "epsilon": epsilon(s, sample_rate, r, delta, accountant)}
            for s in noise_multipliers for r in range(1, rounds + 1)]
    return pd.DataFrame(rows)


def plot_epsilon(info: pd.DataFrame, title: str = ""):
    """Lines of epsilon over rounds, one per noise multiplier (from :func:`epsilon_info`).

    Parameters
    ----------
    info : DataFrame
        The output of :func:`epsilon_info`.
    title : str
        The figure's title; empty for the default one.
    """
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=part["round"].tolist(),
                                y=np.round(part["epsilon"], 4).tolist(),
                                mode="lines+markers", name=f"sigma = {sigma:g}")
                     for sigma, part in info.groupby("noise_multiplier")])
    fig.update_layout(title=title or "Privacy budget spent over the rounds",
                      xaxis_title="round", yaxis_title="epsilon (lower is more private)",
                      yaxis_type="log", template="plotly_white", width=640, height=420)
    return fig


def masking_info(real: torch.Tensor, masked: torch.Tensor, modulus_bits: int,
                 bins: int = 40) -> dict[str, np.ndarray]:
    """Histograms of a site's real update values and of the masked integers the server
    receives (as a fraction of the modulus), and their correlation.

    Parameters
    ----------
    real, masked : tensor
        A site's real update values and the masked integers it sends for them.
    modulus_bits : int
        The masking modulus' bits (``masked`` is divided by ``2**modulus_bits``).
    bins : int
        Number of histogram bins (default 40).
    """
    r = real.detach().double().flatten().numpy()
    m = masked.detach().double().flatten().numpy() / 2.0**modulus_bits
    return {"real_counts": np.histogram(r, bins)[0], "real_edges": np.histogram(r, bins)[1],
            "masked_counts": np.histogram(m, bins, (0, 1))[0],
            "masked_edges": np.histogram(m, bins, (0, 1))[1],
            "correlation": float(np.corrcoef(r, m)[0, 1])}


def plot_masking(info: dict[str, np.ndarray], title: str = ""):
    """Two histograms side by side: what the site computed, what the server sees.

    Parameters
    ----------
    info : dict
        The output of :func:`masking_info`.
    title : str
        The figure's title; empty for the default one.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "the site's real update (weights)",
        f"what the server receives (masked, corr. {info['correlation']:.3f})"))
    for col, key in ((1, "real"), (2, "masked")):
        edges = info[f"{key}_edges"]
        fig.add_trace(go.Bar(x=np.round((edges[:-1] + edges[1:]) / 2, 5).tolist(),
                             y=info[f"{key}_counts"].tolist(), showlegend=False), row=1, col=col)
    fig.update_xaxes(title_text="value", row=1, col=1)
    fig.update_xaxes(title_text="masked integer / modulus", row=1, col=2)
    fig.update_yaxes(title_text="count", row=1, col=1)
    fig.update_layout(title=title or "Secure aggregation: one site's upload",
                      template="plotly_white", width=900, height=380, bargap=0)
    return fig
