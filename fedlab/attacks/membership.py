"""Membership inference: was this image in some site's training data?

Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine Learning: Analyzing the
Connection to Overfitting", IEEE CSF 2018: a model's loss is lower on the images it
was trained on, so an attacker who can query the global model guesses "member" when
the loss is below a threshold. Sweeping the threshold gives a ROC curve; its AUC is 0.5
when the model leaks nothing about membership and 1 when it gives every member away.
The advantage ``max(TPR - FPR)`` bounds what the best threshold gains over guessing
(for an (epsilon, 0)-DP model it is at most ``e**epsilon - 1``, Yeom et al.).

Members are training images of the sites, non-members held-out images (the test split
by default, or the validation split), in equal numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..history import History
from ..metrics import binary_auc
from ..models import model_for_run
from ..sites import Site

__all__ = ["sample_losses", "loss_threshold_attack", "membership_info", "plot_membership"]


@torch.no_grad()
def sample_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int = 1024) -> np.ndarray:
    """The cross-entropy of every sample under ``model`` (evaluation mode)."""
    model.eval()
    out = [F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="none")
           for i in range(0, len(y), batch_size)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)


def loss_threshold_attack(member_losses: np.ndarray,
                          nonmember_losses: np.ndarray) -> dict[str, Any]:
    """ROC of the rule "member if loss <= threshold", over every threshold.

    Returns ``auc``, ``advantage`` (max TPR - FPR), the best ``threshold`` and the
    curve ``fpr``, ``tpr`` (arrays).

    Parameters
    ----------
    member_losses, nonmember_losses : array-like of float
        Per-sample losses of images known to be in, and known not to be in, the training
        data (both non-empty; e.g. from :func:`sample_losses`).
    """
    m, n = np.asarray(member_losses, float), np.asarray(nonmember_losses, float)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("member_losses and nonmember_losses must both be non-empty")
    thresholds = np.unique(np.concatenate([m, n]))
    tpr = np.searchsorted(np.sort(m), thresholds, side="right") / len(m)
    fpr = np.searchsorted(np.sort(n), thresholds, side="right") / len(n)
    best = int(np.argmax(tpr - fpr))
    scores = -np.concatenate([m, n])
    member = np.r_[np.ones(len(m), bool), np.zeros(len(n), bool)]
    return {"auc": binary_auc(scores, member), "advantage": float(tpr[best] - fpr[best]),
            "threshold": float(thresholds[best]),
            "fpr": np.r_[0.0, fpr], "tpr": np.r_[0.0, tpr]}


def _sample(sites: Sequence[Site], split: str, n: int, rng: np.random.Generator):
    xs, ys = zip(*(s.tensors(split) for s in sites), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    idx = np.sort(rng.choice(len(y), size=min(n, len(y)), replace=False))
    return x[idx], y[idx]


def membership_info(history: History, sites: Sequence[Site], model: nn.Module | None = None,
                    n: int = 500, seed: int = 0, nonmembers: str = "test") -> dict[str, Any]:
    """The loss-threshold attack against the final global model of ``history``.

    Parameters
    ----------
    history : History
        A run returned by :func:`fedlab.run` (it holds the final global state).
    sites : list of Site
        The federation: members are drawn from its ``train`` splits, non-members from
        its ``nonmembers`` splits.
    model : nn.Module, optional
        Only for a custom architecture that cannot be rebuilt from its name.
    n : int
        Members and non-members each (at most the images available; equal counts).
    seed : int
        Which images are drawn.
    nonmembers : {"test", "val"}
        The held-out split the non-members come from. If it was collected differently
        from the training split (another period, another scanner), the attack also
        picks up that shift, not only what the model memorised.

    Returns
    -------
    dict
        :func:`loss_threshold_attack`'s numbers plus ``member_loss`` and
        ``nonmember_loss`` (the per-image losses) and ``n``.
    """
    if history.final_state is None:
        raise ValueError("history has no final_state (a loaded History): pass the History "
                         "returned by fedlab.run")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if nonmembers not in ("test", "val"):
        raise ValueError(f"nonmembers must be 'test' or 'val', got {nonmembers!r}")
    net = model_for_run(history.config, sites, model)
    net.load_state_dict(history.final_state)
    net = net.cpu()
    rng = np.random.default_rng(seed)
    n = min(n, sum(s.size("train") for s in sites), sum(s.size(nonmembers) for s in sites))
    member = sample_losses(net, *_sample(sites, "train", n, rng))
    other = sample_losses(net, *_sample(sites, nonmembers, n, rng))
    return {**loss_threshold_attack(member, other), "member_loss": member,
            "nonmember_loss": other, "n": n}


def plot_membership(infos: dict[str, dict[str, Any]], title: str = ""):
    """ROC curves of :func:`membership_info` results, one per named run.

    Parameters
    ----------
    infos : dict of str to dict
        Run name -> the output of :func:`membership_info` (or of
        :func:`loss_threshold_attack`), drawn with its AUC in the legend.
    title : str
        The figure's title; empty for the default one.
    """
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUC 0.5)",
                                line={"dash": "dot", "color": "grey"})])
    for name, info in infos.items():
        fig.add_trace(go.Scatter(x=np.round(info["fpr"], 4).tolist(),
                                 y=np.round(info["tpr"], 4).tolist(), mode="lines",
                                 name=f"{name} (AUC {info['auc']:.3f})"))
    fig.update_layout(title=title or "Membership inference (loss threshold)",
                      xaxis_title="false positive rate (non-members called members)",
                      yaxis_title="true positive rate (members found)",
                      template="plotly_white", width=560, height=440)
    return fig
