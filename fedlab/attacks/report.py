"""Clean accuracy and attack success of several runs, side by side (compute, then plot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from torch import nn

from ..history import History
from ..models import model_for_run
from ..sites import Site
from .backdoor import Backdoor

__all__ = ["attack_info", "plot_attacks", "plot_trigger"]


def attack_info(runs: Mapping[str, History], sites: Sequence[Site],
                backdoor: Backdoor | None = None, model: nn.Module | None = None,
                split: str = "test") -> pd.DataFrame:
    """One row per run: the final global model's clean ``accuracy`` and ``auc`` on the
    sites' ``split``, the updates excluded as non-finite, and with ``backdoor`` its
    ``attack_success`` (share of triggered non-target images classified as the target).

    Parameters
    ----------
    runs : dict of str to History
        Run name -> the History returned by :func:`fedlab.run` (it needs its
        ``final_state``: a loaded History will not do).
    sites : sequence of Site
        The clean sites, whose ``split`` is scored.
    backdoor : Backdoor, optional
        The attack whose success rate to add; none by default.
    model : nn.Module, optional
        Only needed for a custom architecture that cannot be rebuilt from its name.
    split : str
        The split to score (default ``"test"``).
    """
    if not runs:
        raise ValueError("runs must hold at least one History")
    rows = []
    for name, hist in runs.items():
        if hist.final_state is None:
            raise ValueError(f"runs[{name!r}] has no final_state (a loaded History): "
                             "pass Histories returned by fedlab.run")
        row = {"run": name, "accuracy": hist.final("accuracy", split=split),
               "auc": hist.final("auc", split=split),
               "excluded": int(sum(r.get("excluded", 0) for r in hist.rounds))}
        if backdoor is not None:
            net = model_for_run(hist.config, sites, model)
            row["attack_success"] = backdoor.success_rate(net, sites, hist.final_state,
                                                          split=split)
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def plot_attacks(info: pd.DataFrame,
                 columns: Sequence[str] = ("accuracy", "attack_success"), title: str = ""):
    """Grouped bars of ``columns`` (fractions in [0, 1]) per run of :func:`attack_info`.

    Parameters
    ----------
    info : DataFrame
        The output of :func:`attack_info`, one row per run.
    columns : sequence of str
        Columns of ``info`` to draw (default clean accuracy and attack success).
    title : str
        The figure's title; none when empty.
    """
    import plotly.graph_objects as go

    missing = [c for c in columns if c not in info.columns]
    if missing:
        raise ValueError(f"columns must be among {list(info.columns)}, got {missing}")
    names = {"accuracy": "clean accuracy", "attack_success": "attack success rate",
             "auc": "clean AUC"}
    fig = go.Figure([go.Bar(name=names.get(c, c), x=list(info.index), y=info[c].tolist(),
                            text=[f"{v:.2f}" for v in info[c]], textposition="outside")
                     for c in columns])
    fig.update_layout(barmode="group", title=title or None, yaxis_range=[0, 1.1],
                      yaxis_title="fraction", xaxis_title="run", template="plotly_white",
                      legend=dict(orientation="h", y=1.08, x=0))
    return fig


def plot_trigger(backdoor: Backdoor, site: Site, n: int = 4, split: str = "test",
                 seed: int = 0):
    """``n`` of the site's images (top row) and the same with the trigger (bottom row).

    For teaching figures only: it shows images of ``site`` (:meth:`Site.peek`).

    Parameters
    ----------
    backdoor : Backdoor
        Whose trigger is stamped (its target label is named in the title).
    site : Site
        Where the images come from.
    n : int
        How many images (at most those in the split).
    split : str
        The split to draw them from (default ``"test"``).
    seed : int
        Which images are drawn.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    part = site.peek(n, split=split, seed=seed)
    rows = {"clean": part.images, "with trigger": backdoor.trigger.apply(part.images)}
    fig = make_subplots(rows=2, cols=len(part), horizontal_spacing=0.01,
                        vertical_spacing=0.06, row_titles=list(rows))
    for r, images in enumerate(rows.values(), start=1):
        for c, (img, label) in enumerate(zip(images, part.labels, strict=True), start=1):
            fig.add_trace(go.Heatmap(z=img[0][::-1], colorscale="gray", zmin=0, zmax=1,
                                     showscale=False, hovertemplate=f"label {int(label)}"
                                     "<extra></extra>"), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(height=330, width=120 * len(part) + 120, template="plotly_white",
                      title=f"trigger: {backdoor.trigger.size} px {backdoor.trigger.pattern}, "
                            f"target label {backdoor.target} ({site.classes[backdoor.target]})",
                      margin=dict(l=10, r=40, t=50, b=10))
    return fig
