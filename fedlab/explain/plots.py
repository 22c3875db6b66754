"""plotly figures of explanations and per-site fairness (compute → info → figure).

Each ``*_info`` returns the numbers as a DataFrame; the plain name returns a
``go.Figure`` and never calls ``.show()``. Saliency overlays are embedded as small
PNG images (a few kB each), so notebooks stay small.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["overlay", "saliency_grid_info", "saliency_grid", "volume_slices_info",
           "volume_slices", "site_metrics_info", "site_metrics", "reliability_diagram",
           "contribution_bars"]

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2",
           "#FF9DA6", "#9D755D", "#BAB0AC")
# a "hot" colour ramp: dark red -> red -> yellow -> white
_RAMP = np.array([[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [1.0, 0.55, 0.0], [1.0, 1.0, 0.3],
                  [1.0, 1.0, 1.0]])


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """RGB ``uint8`` ``(H, W, 3)``: the grey image with the saliency map in hot colours
    on top, opaque where saliency is high and transparent where it is 0."""
    grey = np.asarray(image, dtype=np.float64)
    grey = grey.mean(0) if grey.ndim == 3 else grey
    m = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, 1.0)
    pos = m * (len(_RAMP) - 1)
    low = np.minimum(pos.astype(int), len(_RAMP) - 2)
    frac = (pos - low)[..., None]
    colour = _RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac
    weight = (alpha * m)[..., None]
    rgb = (1 - weight) * np.clip(grey, 0, 1)[..., None] + weight * colour
    return np.round(rgb * 255).astype(np.uint8)


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def saliency_grid_info(maps: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per model (row) and image: where the map peaks and how concentrated it is.

    Columns: row, image, peak_y, peak_x, mean (mean saliency; small = concentrated).
    ``maps`` maps a row name to that model's maps ``(N, H, W)``.
    """
    rows = []
    for name, m in maps.items():
        m = np.asarray(m)
        for i, one in enumerate(m):
            y, x = np.unravel_index(int(np.argmax(one)), one.shape)
            rows.append({"row": name, "image": i, "peak_y": int(y), "peak_x": int(x),
                         "mean": float(one.mean())})
    return pd.DataFrame(rows)


def saliency_grid(images: np.ndarray, maps: Mapping[str, np.ndarray],
                  titles: Sequence[str] | None = None, alpha: float = 0.6,
                  title: str = "Saliency") -> go.Figure:
    """Rows = models (or sites), columns = images; each cell the image with the row's
    saliency map on top; the first row shows the images alone.

    Parameters
    ----------
    images : array (N, C, H, W)
        The images, with values in ``[0, 1]``.
    maps : dict name -> (N, H, W)
        Each row's saliency maps of the same ``images``, values in ``[0, 1]``.
    titles : list of str, optional
        One column title per image (e.g. the labels).
    alpha : float
        Opacity of the saliency colours where saliency is 1 (see :func:`overlay`).
    title : str
        Title of the figure.
    """
    images = np.asarray(images)
    n = len(images)
    for name, m in maps.items():
        if np.shape(m) != (n, *images.shape[2:]):
            raise ValueError(f"maps[{name!r}] must have shape {(n, *images.shape[2:])}, "
                             f"got {np.shape(m)}")
    rows = ["image", *maps]
    fig = make_subplots(rows=len(rows), cols=n, horizontal_spacing=0.01,
                        vertical_spacing=0.02, column_titles=list(titles) if titles else None,
                        row_titles=rows)
    for r, name in enumerate(rows):
        for c in range(n):
            sal = np.zeros(images.shape[2:]) if name == "image" else np.asarray(maps[name][c])
            fig.add_trace(go.Image(source=_png(overlay(images[c], sal, alpha)), zsmooth=False,
                                   hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=110 * len(rows) + 80, width=110 * n + 160,
                      margin={"l": 20, "r": 120, "t": 80, "b": 10})
    return fig


def volume_slices_info(volume: np.ndarray, maps: Mapping[str, np.ndarray] | np.ndarray | None
                       = None, at: Sequence[int] | None = None) -> dict:
    """The axial, coronal and sagittal slices through voxel ``at`` of a volume and of
    each saliency map (e.g. Grad-CAM of a 3-D model: :func:`~fedlab.explain.saliency`).

    Parameters
    ----------
    volume : array (C, D, H, W) or (D, H, W)
        One volume, values in ``[0, 1]``.
    maps : array (D, H, W) or dict name -> (D, H, W), optional
        Saliency maps of that volume (one array is named ``"saliency"``).
    at : (d, h, w), optional
        The voxel the three planes cross at; default the middle one.

    Returns
    -------
    dict
        ``at``; ``views`` ``("axial", "coronal", "sagittal")``; ``slices``: row name
        (``"volume"``, then each map's) -> the three slices ``(H, W)``, ``(D, W)``,
        ``(D, H)`` (the volume's keep their channels first).
    """
    volume = np.asarray(volume)
    maps = {} if maps is None else ({"saliency": maps} if isinstance(maps, np.ndarray)
                                    else dict(maps))
    shape = volume.shape[-3:]
    if volume.ndim not in (3, 4) or any(np.shape(m) != shape for m in maps.values()):
        raise ValueError(f"volume must be (C, D, H, W) or (D, H, W) and every map (D, H, W) "
                         f"of its shape, got {volume.shape} and "
                         f"{ {k: np.shape(m) for k, m in maps.items()} }")
    at = tuple(s // 2 for s in shape) if at is None else tuple(int(i) for i in at)
    if len(at) != 3 or not all(0 <= i < s for i, s in zip(at, shape, strict=True)):
        raise ValueError(f"at must be a voxel (d, h, w) inside {shape}, got {at}")

    def planes(a: np.ndarray) -> list[np.ndarray]:
        return [np.take(a, at[k], axis=k - 3) for k in range(3)]

    slices = {"volume": planes(volume), **{k: planes(np.asarray(m)) for k, m in maps.items()}}
    return {"at": at, "views": ("axial", "coronal", "sagittal"), "slices": slices}


def volume_slices(volume: np.ndarray, maps: Mapping[str, np.ndarray] | np.ndarray | None = None,
                  at: Sequence[int] | None = None, alpha: float = 0.6,
                  title: str = "Middle slices") -> go.Figure:
    """Three orthogonal slices of a volume (columns: axial, coronal, sagittal), the
    volume alone in the first row and each saliency map over it in the next ones.

    ``volume``, ``maps`` and ``at`` are as for :func:`volume_slices_info`; ``alpha`` is
    the opacity of the saliency colours (see :func:`overlay`), ``title`` the figure's.
    """
    info = volume_slices_info(volume, maps, at)
    rows, letters = list(info["slices"]), "DHW"
    fig = make_subplots(rows=len(rows), cols=3, horizontal_spacing=0.02,
                        vertical_spacing=0.03, row_titles=rows,
                        column_titles=[f"{v} ({letters[k]}={info['at'][k]})"
                                       for k, v in enumerate(info["views"])])
    for r, name in enumerate(rows):
        for c in range(3):
            grey = info["slices"]["volume"][c]
            sal = np.zeros(grey.shape[-2:]) if name == "volume" else info["slices"][name][c]
            fig.add_trace(go.Image(source=_png(overlay(grey, sal, alpha)), zsmooth=False,
                                   hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=160 * len(rows) + 80, width=560,
                      margin={"l": 20, "r": 120, "t": 80, "b": 10})
    return fig


def site_metrics_info(reports: pd.DataFrame | Mapping[str, pd.DataFrame],
                      metric: str = "accuracy") -> pd.DataFrame:
    """Columns run, site, value, worst (True at each run's worst site); ``reports`` is one
    :func:`~fedlab.explain.site_report` or ``{run name: report}``, ``metric`` one of its
    columns (for ``"ece"`` and ``"loss"`` the worst site is the highest)."""
    if isinstance(reports, pd.DataFrame):
        reports = {"model": reports}
    lower_better = metric in ("ece", "loss")
    frames = []
    for run, rep in reports.items():
        if metric not in rep.columns:
            raise ValueError(f"metric must be one of {list(rep.columns)}, got {metric!r}")
        values = rep[metric].astype(float)
        worst = values.idxmax() if lower_better else values.idxmin()
        frames.append(pd.DataFrame({"run": run, "site": values.index, "value": values.values,
                                    "worst": values.index == worst}))
    return pd.concat(frames, ignore_index=True)


def site_metrics(reports: pd.DataFrame | Mapping[str, pd.DataFrame],
                 metric: str = "accuracy") -> go.Figure:
    """Bars of ``metric`` per site (one colour per run), each run's worst site outlined
    in black and labelled "worst"; ``reports`` as for :func:`site_metrics_info`."""
    info = site_metrics_info(reports, metric)
    fig = go.Figure()
    for i, (run, rows) in enumerate(info.groupby("run", sort=False)):
        fig.add_bar(x=rows["site"], y=rows["value"], name=str(run),
                    marker_color=PALETTE[i % len(PALETTE)],
                    marker_line_color=["black" if w else "rgba(0,0,0,0)" for w in rows["worst"]],
                    marker_line_width=3, text=["worst" if w else "" for w in rows["worst"]],
                    textposition="outside")
    fig.update_layout(barmode="group", title=f"{metric} per site (worst site outlined)",
                      xaxis_title="site", yaxis_title=metric, legend_title="model")
    return fig


def reliability_diagram(info: pd.DataFrame) -> go.Figure:
    """Accuracy against confidence per site (``info`` from
    :func:`~fedlab.explain.reliability_info`), with the diagonal of perfect calibration;
    marker size grows with the number of samples in the bin."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                    line={"dash": "dash", "color": "grey"})
    for i, (site, rows) in enumerate(info.groupby("site", sort=False)):
        rows = rows[rows["count"] > 0]
        size = 5 + 15 * np.sqrt(rows["count"] / max(info["count"].max(), 1))
        fig.add_scatter(x=rows["confidence"], y=rows["accuracy"], mode="lines+markers",
                        name=str(site), marker={"size": size},
                        line={"color": PALETTE[i % len(PALETTE)]},
                        customdata=rows["count"],
                        hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}"
                                      "<br>n %{customdata}")
    fig.update_layout(title="Reliability per site", xaxis_title="confidence (top probability)",
                      yaxis_title="accuracy", xaxis_range=[0, 1.02], yaxis_range=[0, 1.02])
    return fig


def contribution_bars(frame: pd.DataFrame) -> go.Figure:
    """Grouped bars of every column of ``frame``, a :func:`~fedlab.explain.contributions`
    table (e.g. leave-one-out and Shapley value) per site; below zero, a site hurts."""
    fig = go.Figure()
    for i, col in enumerate(frame.columns):
        fig.add_bar(x=list(frame.index), y=frame[col], name=str(col).replace("_", " "),
                    marker_color=PALETTE[i % len(PALETTE)])
    fig.add_hline(y=0, line_color="black", line_width=1)
    extra = ""
    if {"v_all", "v_none"} <= set(frame.attrs):
        extra = f" (v(all) = {frame.attrs['v_all']:.3f}, v(none) = {frame.attrs['v_none']:.3f})"
    fig.update_layout(barmode="group", title="Contribution of each site" + extra,
                      xaxis_title="site", yaxis_title="contribution to the utility")
    return fig
