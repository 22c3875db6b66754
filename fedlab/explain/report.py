"""Per-site performance report: does the model work at *this* hospital?

An average hides the hospital that is served worst. :func:`site_report` scores the
model each site would use (the global model, or the site's own for local-only and
personalised runs) on that site's test split: accuracy, AUC, sensitivity,
specificity and expected calibration error (ECE); :func:`fairness` reduces it to the
worst site and the spread across sites; :func:`confusion_matrices` and
:func:`reliability_info` give the tables behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..history import History
from ..metrics import (
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    reliability,
    sensitivity_specificity,
)
from ..sites import Site
from ..training import predict
from .models import architecture, build_model

__all__ = ["site_predictions", "site_report", "fairness", "fairness_table",
           "confusion_matrices", "reliability_info"]

Source = History | nn.Module | dict


def _models(source: Source, sites: Sequence[Site],
            model: str | nn.Module | None) -> dict[str, nn.Module]:
    """The model each site uses, by site name."""
    if isinstance(source, History):
        if not source.site_states:
            raise ValueError("history has no final models: it was loaded from JSON; "
                             "use the History returned by fl.run")
        name = architecture(source, model)
        built: dict[int, nn.Module] = {}
        out = {}
        for s in sites:
            if s.name not in source.site_states:
                raise ValueError(f"site {s.name!r} was not in the run; its sites are "
                                 f"{sorted(source.site_states)}")
            state = source.site_states[s.name]
            if id(state) not in built:  # FedAvg: every site shares one state, build once
                built[id(state)] = build_model(state, name, sites)
            out[s.name] = built[id(state)]
        return out
    if isinstance(source, nn.Module):
        return {s.name: source.eval() for s in sites}
    if isinstance(source, dict):
        net = build_model(source, model if model is not None else "cnn", sites)
        return {s.name: net for s in sites}
    raise TypeError(f"source must be a History, an nn.Module or a state dict, "
                    f"got {type(source).__name__}")


def site_predictions(source: Source, sites: Sequence[Site], split: str = "test",
                     model: str | nn.Module | None = None,
                     ) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """``{site: (probabilities, labels, summed loss)}`` of each site's model on its split.

    Parameters
    ----------
    source : History, nn.Module or state dict
        A History returned by :func:`fedlab.run` (each site's own final model), one
        model for all sites, or a state dict of one.
    sites : list of Site
        The sites to score, each on its own ``split``.
    split : {"train", "val", "test"}
        Which split of each site.
    model : str or nn.Module, optional
        The architecture to rebuild: for a History, default the run's model name; for a
        state dict, default ``"cnn"``; ignored for an nn.Module.
    """
    nets = _models(source, sites, model)
    out = {}
    for s in sites:
        x, y = s.tensors(split, "cpu")
        with torch.no_grad():
            p, loss = predict(nets[s.name].cpu(), x, y)
        out[s.name] = (p, y.numpy(), loss)
    return out


def site_report(source: Source, sites: Sequence[Site], split: str = "test",
                model: str | nn.Module | None = None, bins: int = 10) -> pd.DataFrame:
    """One row per site: n, accuracy, AUC, sensitivity, specificity, ECE and loss.

    Parameters
    ----------
    source : History, nn.Module or state dict
        What to score (see :func:`site_predictions`).
    sites, split, model
        Where and how to score it, as for :func:`site_predictions`.
    bins : int
        Bins of the expected calibration error.
    """
    rows = []
    for name, (p, y, loss) in site_predictions(source, sites, split, model).items():
        m = classification_metrics(p, y, loss) if len(y) else {}
        sens, spec = sensitivity_specificity(p, y) if len(y) else (np.nan, np.nan)
        rows.append({"site": name, "n": len(y), "accuracy": m.get("accuracy", np.nan),
                     "auc": m.get("auc", np.nan), "sensitivity": sens, "specificity": spec,
                     "ece": expected_calibration_error(p, y, bins) if len(y) else np.nan,
                     "loss": m.get("loss", np.nan)})
    return pd.DataFrame(rows).set_index("site")


def fairness(report: pd.DataFrame, metric: str = "accuracy") -> dict[str, float | str]:
    """The worst site and the spread of ``metric`` across sites of a ``report``
    (a :func:`site_report` table; ``metric`` one of its columns, NaN sites skipped).

    Returns ``worst_site``, ``worst``, ``best_site``, ``best``, ``mean`` (unweighted over
    sites), ``spread`` (best - worst) and ``std``. For ``"ece"`` and ``"loss"`` lower
    is better, so the worst site is the one with the highest value.
    """
    if metric not in report.columns:
        raise ValueError(f"metric must be one of {list(report.columns)}, got {metric!r}")
    values = report[metric].dropna()
    if values.empty:
        raise ValueError(f"no site has a value for {metric!r}")
    lower_better = metric in ("ece", "loss")
    worst = values.idxmax() if lower_better else values.idxmin()
    best = values.idxmin() if lower_better else values.idxmax()
    return {"metric": metric, "worst_site": str(worst), "worst": float(values[worst]),
            "best_site": str(best), "best": float(values[best]), "mean": float(values.mean()),
            "spread": float(abs(values[best] - values[worst])),
            "std": float(values.std(ddof=0))}


def confusion_matrices(source: Source, sites: Sequence[Site], split: str = "test",
                       model: str | nn.Module | None = None) -> dict[str, pd.DataFrame]:
    """``{site: confusion matrix}`` (rows: true class, columns: predicted class).

    ``source``, ``sites``, ``split`` and ``model`` are as for :func:`site_predictions`.
    """
    classes = list(sites[0].classes)
    out = {}
    for name, (p, y, _) in site_predictions(source, sites, split, model).items():
        cm = confusion_matrix(p, y) if len(y) else np.zeros((len(classes),) * 2, int)
        out[name] = pd.DataFrame(cm, index=pd.Index(classes, name="true"),
                                 columns=pd.Index(classes, name="predicted"))
    return out


def reliability_info(source: Source, sites: Sequence[Site], split: str = "test",
                     model: str | nn.Module | None = None, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data per site: columns site, lower, upper, count, confidence,
    accuracy (one row per bin, empty bins included with NaN).

    ``source``, ``sites``, ``split`` and ``model`` are as for :func:`site_predictions`;
    ``bins`` is the number of equal-width confidence bins of ``[0, 1]``.
    """
    frames = []
    for name, (p, y, _) in site_predictions(source, sites, split, model).items():
        if len(y):
            frames.append(pd.DataFrame({"site": name, **reliability(p, y, bins)}))
    return pd.concat(frames, ignore_index=True)


def fairness_table(reports: Mapping[str, pd.DataFrame],
                   metrics: Sequence[str] = ("accuracy", "sensitivity", "ece")) -> pd.DataFrame:
    """:func:`fairness` for every run and metric: one row per ``(run, metric)``, columns
    ``worst_site``, ``worst``, ``best_site``, ``best``, ``mean``, ``spread`` (numbers as
    floats, ready to round). ``reports`` maps a run name to its :func:`site_report`;
    ``metrics`` are the report columns to summarise."""
    rows = {(name, metric): fairness(report, metric)
            for name, report in reports.items() for metric in metrics}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["run", "metric"]
    numbers = ["worst", "best", "mean", "spread"]
    table[numbers] = table[numbers].astype(float)
    return table[["worst_site", "worst", "best_site", "best", "mean", "spread"]]
