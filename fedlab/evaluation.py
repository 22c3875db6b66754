"""Evaluating trained models on any sites' data, after a run.

``run`` scores each site's model on that site's own test split. Two questions need
more: how does a model serve *other* hospitals' patients (cross-site evaluation), and
how do several runs compare in one table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from .engine.evaluate import score_sites
from .history import GLOBAL, History
from .models import model_for_run
from .sites import Site
from .training import resolve_device

__all__ = ["evaluate", "evaluate_federated", "cross_site", "compare", "who_gains",
           "site_table", "final_models"]

State = dict[str, torch.Tensor]


def evaluate(model: nn.Module, sites: Sequence[Site], state: State | None = None,
             split: str = "test", device: str = "auto") -> pd.DataFrame:
    """Metrics of one model on each site's ``split`` and on their union (``"global"``).

    Parameters
    ----------
    model : nn.Module
        The architecture (its weights are replaced by ``state`` when given).
    sites : list of Site
        Where to evaluate.
    state : dict of tensors, optional
        Weights to load, e.g. ``history.final_state``; default: the model's own.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    device : str or torch.device
        Where to compute; ``"auto"`` picks CUDA when available, else CPU.
    """
    dev = resolve_device(device)
    model = model.to(dev)
    if state is None:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = score_sites(model, [state] * len(sites), sites, split, dev)
    return pd.DataFrame([{"site": name, **m} for name, m in rows]).set_index("site")


def evaluate_federated(model: nn.Module | History, sites: Sequence[Site],
                       architecture: nn.Module | None = None, split: str = "test",
                       device: str = "auto") -> pd.DataFrame:
    """Score a fixed model at each site without training: what a hospital checks before
    it joins a federation, or a federation checks at a hospital it never trained on.

    Each site scores the model on its own ``split`` and reports only the metrics (its
    images never leave it); ``"global"`` pools all sites' patients.

    Parameters
    ----------
    model : nn.Module or History
        A network (with its weights), or a finished run (its ``final_state``; the
        architecture rebuilt from its config, or ``architecture``).
    sites : list of Site
        Where to evaluate (sites the model may never have seen).
    architecture : nn.Module, optional
        The network of a run made with a custom model.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    device : str or torch.device
        Where to compute.
    """
    if isinstance(model, History):
        if not model.final_state:
            raise ValueError("the History holds no final model: pass the one returned by "
                             "fedlab.run, or the model itself")
        net = model_for_run(model.config, sites, architecture)
        return evaluate(net, sites, model.final_state, split, device)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or a History, got {type(model).__name__}")
    return evaluate(model, sites, None, split, device)


def cross_site(history: History, sites: Sequence[Site], metric: str = "accuracy",
               split: str = "test", model: nn.Module | None = None,
               device: str = "auto") -> pd.DataFrame:
    """Each site's final model (rows) scored on every site's ``split`` (columns).

    The ``"global"`` column scores each model on all sites' patients together. For a
    shared global model (FedAvg) all rows are equal; for local-only or personalised
    runs the off-diagonal cells show how a hospital's model serves other hospitals.

    Parameters
    ----------
    history : History
        As returned by ``run`` (it holds the final site models, which JSON does not).
    sites : list of Site
        The run's sites: whose models (rows) and whose data (columns).
    metric : str
        A column of :func:`evaluate`'s table, e.g. ``"accuracy"``, ``"auc"``, ``"loss"``.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    model : nn.Module, optional
        The architecture; needed when the run used a custom model, else rebuilt from
        ``history.config``.
    device : str or torch.device
        Where to compute; ``"auto"`` picks CUDA when available, else CPU.
    """
    if not history.site_states:
        raise ValueError("history has no final site models: it was loaded from JSON or made "
                         "by hand; cross-site evaluation needs the History returned by run()")
    net = model_for_run(history.config, sites, model)
    table = {owner: evaluate(net, sites, state, split, device)[metric]
             for owner, state in history.site_states.items()}
    frame = pd.DataFrame(table).T
    frame.index.name, frame.columns.name = "model of", "tested at"
    return frame


def compare(runs: Mapping[str, History], split: str = "test") -> pd.DataFrame:
    """One row per run: final global accuracy, AUC, loss, the worst site's accuracy,
    MB sent up and down, and wall time; for classification also ``majority`` (the
    accuracy of always answering the most frequent class: the baseline to beat) and
    ``collapsed`` (True when the model answers one class for almost every image, see
    :data:`fedlab.history.COLLAPSE_SHARE`).

    Parameters
    ----------
    runs : mapping of str to History
        Run name (the row label) -> its history.
    split : str
        The split whose final global metrics are compared (one the runs scored, see
        ``eval_splits``).
    """
    rows = []
    for name, h in runs.items():
        s = h.summary(split)
        per_site = h.per_site("accuracy", split=split)
        row = {
            "run": name, "accuracy": s["accuracy"], "auc": s["auc"], "loss": s["loss"],
            "worst site accuracy": float(per_site.min()) if len(per_site) else float("nan"),
            "MB up": s["bytes_up"] / 1e6, "MB down": s["bytes_down"] / 1e6,
            "wall s": s["wall_s"],
        }
        if "collapsed" in s:
            row.update(majority=s["majority"], collapsed=s["collapsed"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def who_gains(per_site: pd.DataFrame, reference: str = "FedAvg", local: str = "local-only",
              tol: float = 1e-3, setups: Sequence[str] | None = None) -> pd.DataFrame:
    """Per set-up (a column of ``per_site``): its worst site, and where it gains or loses.

    Parameters
    ----------
    per_site : DataFrame
        One row per site, one column per set-up, each a per-site accuracy (e.g. built from
        :meth:`History.per_site`); other columns (site sizes, class shares) may be
        present when ``setups`` names the set-up columns.
    reference, local : str
        Columns to count gains against: the shared-model baseline and local-only training.
        A missing column gives no count for it.
    tol : float
        Differences of at most ``tol`` count as ties.
    setups : list of str, optional
        The set-up columns; default: every column except ``"train images"`` and
        ``"pneumonia share"`` (the descriptive columns the lessons add).

    Returns
    -------
    DataFrame
        One row per set-up: ``worst site``, ``its accuracy``, ``mean over sites`` and, per
        baseline present, ``beats <reference> at`` / ``trails <reference> at`` /
        ``beats <local> at`` (numbers of sites).
    """
    if setups is None:
        acc = per_site.drop(columns=["train images", "pneumonia share"], errors="ignore")
    else:
        missing = [c for c in setups if c not in per_site]
        if missing:
            raise ValueError(f"setups must be columns of per_site, got unknown {missing}")
        acc = per_site[list(setups)]
    out = pd.DataFrame({"worst site": acc.idxmin(), "its accuracy": acc.min(),
                        "mean over sites": acc.mean()})
    if reference in acc:
        diff = acc.sub(acc[reference], axis=0)
        out[f"beats {reference} at"] = (diff > tol).sum()
        out[f"trails {reference} at"] = (diff < -tol).sum()
    if local in acc:
        out[f"beats {local} at"] = (acc.sub(acc[local], axis=0) > tol).sum()
    return out


def site_table(runs: Mapping[str, History], metric: str, split: str = "test",
               hint: str = "") -> pd.DataFrame:
    """The final ``metric`` of every site (rows, then ``"global"``) in every run (columns).

    Parameters
    ----------
    runs : mapping of name to History
        The runs, one column each (not empty).
    metric : str
        A metric every run logged (``"accuracy"``, ``"dice"``, ``"psnr"``, ...).
    split : str
        The split scored.
    hint : str
        Added to the error when a run lacks ``metric`` (which kind of run was expected).
    """
    if not runs:
        raise ValueError("runs must hold at least one History")
    columns = {}
    for name, h in runs.items():
        if not any(metric in r for r in h.metrics):
            raise ValueError(f"run {name!r} has no {metric!r} metric{hint}")
        per_site = h.per_site(metric, split=split)
        per_site[GLOBAL] = h.final(metric, GLOBAL, split)
        columns[name] = per_site
    frame = pd.DataFrame(columns)
    frame.index.name, frame.columns.name = "site", "run"
    return frame


def final_models(runs: Mapping[str, History], sites: Sequence[Site],
                 model: nn.Module | None = None) -> dict[str, nn.Module]:
    """One network per run, on the CPU, to load the run's final ``site_states`` into.

    Parameters
    ----------
    runs : mapping of name to History
        Runs returned by :func:`fedlab.run` (JSON-loaded ones have no final models).
    sites : sequence of Site
        The runs' sites (their data fix a named model's shape).
    model : nn.Module, optional
        The architecture, when the runs used a custom model.
    """
    nets = {}
    for name, h in runs.items():
        if not h.site_states:
            raise ValueError(f"run {name!r} has no final site models: pass the History "
                             "returned by fedlab.run, not one loaded from JSON")
        nets[name] = model_for_run(h.config, sites, model).cpu()
    return nets
