"""Reading federated segmentation runs: Dice per site, and predicted masks on images.

Compute, then draw: :func:`dice_table` and :func:`mask_overlays_info` compute the
numbers and masks, :func:`plot_dice_by_site` and :func:`plot_mask_overlays` return a
plotly ``go.Figure`` (never shown here). Runs come from :func:`fedlab.run` on sites whose
labels are masks (e.g. :func:`fedlab.data.make_segmentation` split by
:func:`fedlab.data.split_segmentation`); each site is scored with the model it would use
(the global model for FedAvg, its own for local-only).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from .evaluation import final_models, site_table
from .history import History
from .metrics import dice
from .sites import Site

__all__ = ["dice_table", "plot_dice_by_site", "mask_overlays_info", "plot_mask_overlays"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# contour colours of the mask boundaries: organ (level 0.5), lesion (level 1.5), ...
_EDGES = ("#00e5ff", "#ff3b3b", "#ffd400", "#7cff4f")


def dice_table(runs: Mapping[str, History], metric: str = "dice",
               split: str = "test") -> pd.DataFrame:
    """The final ``metric`` of every site (rows, then ``"global"``) in every run (columns).

    ``metric`` is ``"dice"`` (mean over foreground classes) or ``"dice_<c>"`` for class
    ``c`` alone; the ``"global"`` row scores all sites' images together.

    Parameters
    ----------
    runs : mapping of name to History
        Segmentation runs (sites with masks), one column each.
    metric : str
        ``"dice"`` or ``"dice_<c>"``, as above.
    split : str
        The split scored (one the runs evaluated, ``"test"`` by default).
    """
    return site_table(runs, metric, split, hint=": was it a segmentation run (sites with "
                      "masks)?")


def plot_dice_by_site(frame: pd.DataFrame, title: str = "Dice per site") -> go.Figure:
    """Grouped bars of :func:`dice_table`: one group per site, one bar per run.

    Parameters
    ----------
    frame : DataFrame
        A table from :func:`dice_table` (sites as rows, runs as columns).
    title : str
        The figure's title.
    """
    fig = go.Figure()
    for i, run in enumerate(frame.columns):
        fig.add_bar(x=list(frame.index), y=frame[run].round(4).tolist(), name=str(run),
                    marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="group", title=title, yaxis=dict(title="Dice", range=[0, 1]),
                      xaxis_title="site")
    return fig


@torch.no_grad()
def _predict_masks(net: nn.Module, state: dict, images: np.ndarray) -> np.ndarray:
    net.load_state_dict(state)
    net.eval()
    return net(torch.from_numpy(images)).argmax(dim=1).numpy()


def mask_overlays_info(sites: Sequence[Site], runs: Mapping[str, History] | None = None,
                       per_site: int = 1, split: str = "test", seed: int = 0,
                       model: nn.Module | None = None) -> list[dict]:
    """A few images of every site, their true masks and each run's predicted masks.

    Parameters
    ----------
    sites : list of Site
        Sites with masks (the images are taken with ``Site.peek``: a teaching view that
        a real hospital would not share).
    runs : mapping of name to History, optional
        Runs returned by :func:`fedlab.run` (their final ``site_states`` are used);
        none: only the true masks.
    per_site, split, seed
        How many images of which split, and which (``Site.peek``'s seed).
    model : nn.Module, optional
        The architecture, when the runs used a custom model.

    Returns
    -------
    list of dict
        One per image: ``site``, ``image`` ``(H, W)``, ``truth`` ``(H, W)``,
        ``pred`` ``{run: (H, W)}`` and ``dice`` ``{run: mean foreground Dice}``.
    """
    runs = dict(runs or {})
    n_classes = len(sites[0].classes)
    nets = final_models(runs, sites, model)
    out = []
    for site in sites:
        sample = site.peek(per_site, split, seed)
        if sample.task != "segmentation":
            raise ValueError(f"site {site.name!r} holds class labels, not masks")
        preds = {name: _predict_masks(nets[name], h.site_states[site.name], sample.images)
                 for name, h in runs.items()}
        for k in range(len(sample)):
            truth = sample.labels[k]
            pred = {name: p[k] for name, p in preds.items()}
            out.append({
                "site": site.name, "image": sample.images[k].mean(axis=0), "truth": truth,
                "pred": pred,
                "dice": {name: float(dice(p[None], truth[None], n_classes).mean())
                         for name, p in pred.items()},
            })
    return out


def _png(image: np.ndarray) -> str:
    """A grey image in ``[0, 1]`` as a PNG data URI (small, and free of long arrays)."""
    from PIL import Image

    buf = io.BytesIO()
    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _contour(mask: np.ndarray, n_classes: int) -> go.Contour:
    edges = [_EDGES[c % len(_EDGES)] for c in range(n_classes - 1)]
    scale = [[i / max(len(edges) - 1, 1), e] for i, e in enumerate(edges)]
    return go.Contour(z=mask.astype(np.int8), showscale=False, hoverinfo="skip",
                      contours=dict(coloring="lines", start=0.5, end=n_classes - 1.5, size=1),
                      colorscale=scale if len(scale) > 1 else [[0, edges[0]], [1, edges[0]]],
                      zmin=0.5, zmax=max(n_classes - 1.5, 0.5), line_width=1.5)


def plot_mask_overlays(info: list[dict], classes: Sequence[str] | None = None) -> go.Figure:
    """Images with mask boundaries: one row per image, the true mask first, then each
    run's prediction with its Dice for that image.

    Boundaries: cyan around the organ (class 1), red around lesions (class 2).

    Parameters
    ----------
    info : list of dict
        What :func:`mask_overlays_info` returns (not empty).
    classes : sequence of str, optional
        The class names, background first (e.g. the sites' ``classes``), for the legend;
        default: the classes found in the true masks, named by number.
    """
    if not info:
        raise ValueError("info is empty: call mask_overlays_info first")
    runs = list(info[0]["pred"])
    n_classes = len(classes) if classes is not None else int(
        max(max(int(r["truth"].max()) for r in info), 1) + 1)
    titles = []
    for row in info:
        titles += [f"{row['site']}: truth"]
        titles += [f"{name}: Dice {row['dice'][name]:.2f}" for name in runs]
    cols = 1 + len(runs)
    fig = make_subplots(rows=len(info), cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.02, vertical_spacing=0.04)
    for r, row in enumerate(info, start=1):
        for c, mask in enumerate([row["truth"], *(row["pred"][n] for n in runs)], start=1):
            fig.add_trace(go.Image(source=_png(row["image"]), hoverinfo="skip"), row=r, col=c)
            fig.add_trace(_contour(mask, n_classes), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_annotations(font_size=10)
    names = ", ".join(f"{_color_name(c)} = {classes[c] if classes else c}"
                      for c in range(1, n_classes))
    fig.update_layout(height=150 * len(info) + 70, width=150 * cols + 40,
                      margin=dict(l=10, r=10, t=60, b=10),
                      title=f"Masks per site (boundaries: {names})")
    return fig


def _color_name(c: int) -> str:
    return ("cyan", "red", "yellow", "green")[(c - 1) % len(_EDGES)]
