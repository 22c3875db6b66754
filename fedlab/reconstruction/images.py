"""Images of reconstruction runs: zero-filled, reconstructed, target and error per
site, and what the scanner measures in k-space."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from ..data.acquisition import Acquisition
from ..data.kspace import fft2c, zero_filled
from ..evaluation import final_models
from ..history import History
from ..imaging import psnr
from ..sites import Site
from .tables import ZERO_FILLED

__all__ = ["panels_info", "plot_panels", "kspace_info", "plot_kspace"]


@torch.no_grad()
def _reconstruct(net: nn.Module, state: dict, inputs: np.ndarray) -> np.ndarray:
    net.load_state_dict(state)
    net.eval()
    return net(torch.from_numpy(inputs)).numpy()


def panels_info(sites: Sequence[Site], runs: Mapping[str, History], per_site: int = 1,
                split: str = "test", seed: int = 0, model: nn.Module | None = None) -> list[dict]:
    """A few images of every site: zero-filled, each run's reconstruction, the target.

    Parameters
    ----------
    sites : list of Site
        Reconstruction sites (images taken with ``Site.peek``: a teaching view).
    runs : mapping of name to History
        Runs returned by :func:`fedlab.run` (their final ``site_states`` are used).
    per_site, split, seed
        How many images of which split, and which (``Site.peek``'s seed).
    model : nn.Module, optional
        The architecture, when the runs used a custom model.

    Returns
    -------
    list of dict
        One per image: ``site``, ``zero_filled``, ``target``, ``recon`` ``{run: (H, W)}``
        and ``psnr`` ``{run or "zero-filled": dB}``.
    """
    nets = final_models(runs, sites, model)
    out = []
    for site in sites:
        sample = site.peek(per_site, split, seed)
        if sample.task != "reconstruction":
            raise ValueError(f"site {site.name!r} holds {sample.task} labels, not images")
        recon = {name: _reconstruct(nets[name], h.site_states[site.name], sample.images)
                 for name, h in runs.items()}
        zf = zero_filled(sample.images)
        for k in range(len(sample)):
            target = sample.labels[k]
            scores = {ZERO_FILLED: float(psnr(zf[k], target)[0])}
            scores.update({name: float(psnr(r[k], target)[0]) for name, r in recon.items()})
            out.append({"site": site.name, "zero_filled": zf[k, 0], "target": target[0],
                        "recon": {name: r[k, 0] for name, r in recon.items()}, "psnr": scores})
    return out


def _image(a: np.ndarray, zmin: float, zmax: float, scale: str = "gray") -> go.Heatmap:
    return go.Heatmap(z=np.round(a, 3), zmin=zmin, zmax=zmax, colorscale=scale,
                      showscale=False, hoverinfo="skip")


def plot_panels(info: list[dict], error_of: str | None = None) -> go.Figure:
    """One row per image: zero-filled, each run's reconstruction (with PSNR), the
    target, and the absolute error map of run ``error_of`` (default: the last run).

    Parameters
    ----------
    info : list of dict
        What :func:`panels_info` returns (not empty).
    error_of : str, optional
        The run whose error map is drawn.
    """
    if not info:
        raise ValueError("info is empty: call panels_info first")
    runs = list(info[0]["recon"])
    error_of = error_of or (runs[-1] if runs else None)
    if error_of is not None and error_of not in runs:
        raise ValueError(f"error_of must be one of {runs}, got {error_of!r}")
    titles = []
    for row in info:
        titles += [f"{row['site']}: zero-filled {row['psnr'][ZERO_FILLED]:.1f} dB"]
        titles += [f"{name} {row['psnr'][name]:.1f} dB" for name in runs]
        titles += ["target"] + ([f"|error| {error_of}"] if error_of else [])
    cols = 2 + len(runs) + (1 if error_of else 0)
    fig = make_subplots(rows=len(info), cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.015, vertical_spacing=0.05)
    for r, row in enumerate(info, start=1):
        images = [row["zero_filled"], *(row["recon"][n] for n in runs), row["target"]]
        for c, image in enumerate(images, start=1):
            fig.add_trace(_image(image, 0.0, 1.0), row=r, col=c)
        if error_of:
            err = np.abs(row["recon"][error_of] - row["target"])
            fig.add_trace(_image(err, 0.0, 0.3, "inferno"), row=r, col=cols)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_annotations(font_size=9)
    fig.update_layout(height=150 * len(info) + 60, width=135 * cols + 40,
                      margin=dict(l=10, r=10, t=50, b=10), title="Reconstructions per site")
    return fig


def kspace_info(image: np.ndarray, acquisitions: Sequence[Acquisition]) -> list[dict]:
    """How one image is measured under each acquisition: its k-space (log magnitude),
    the mask, and the zero-filled image, for the lesson's pictures.

    Parameters
    ----------
    image : ndarray
        One clean image ``(C, H, W)`` or ``(H, W)`` with values in ``[0, 1]``.
    acquisitions : sequence of Acquisition
        The protocols to show.
    """
    image = np.asarray(image, dtype=np.float32)
    image = image[None, None] if image.ndim == 2 else image[None]
    log_k = np.log1p(np.abs(fft2c(image.mean(axis=1)[0].astype(np.float64))))
    out = []
    for acq in acquisitions:
        inputs, target = acq.apply(image)
        out.append({"acquisition": acq, "kspace": log_k, "mask": inputs[0, -1],
                    "zero_filled": zero_filled(inputs)[0, 0], "target": target[0, 0],
                    "psnr": float(psnr(zero_filled(inputs), target)[0])})
    return out


def plot_kspace(info: list[dict]) -> go.Figure:
    """One row per acquisition: the full k-space, what the mask keeps of it, and the
    zero-filled image with its PSNR.

    Parameters
    ----------
    info : list of dict
        What :func:`kspace_info` returns (not empty).
    """
    if not info:
        raise ValueError("info is empty: call kspace_info first")
    titles = []
    for row in info:
        a = row["acquisition"]
        titles += ["k-space (log |k|)", f"{a.acceleration:g}x {a.mask}: measured",
                   f"zero-filled {row['psnr']:.1f} dB"]
    fig = make_subplots(rows=len(info), cols=3, subplot_titles=titles,
                        horizontal_spacing=0.03, vertical_spacing=0.06)
    for r, row in enumerate(info, start=1):
        top = float(row["kspace"].max())
        fig.add_trace(_image(row["kspace"], 0.0, top, "viridis"), row=r, col=1)
        fig.add_trace(_image(row["kspace"] * row["mask"], 0.0, top, "viridis"), row=r, col=2)
        fig.add_trace(_image(row["zero_filled"], 0.0, 1.0), row=r, col=3)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_annotations(font_size=10)
    fig.update_layout(height=190 * len(info) + 60, width=560,
                      margin=dict(l=10, r=10, t=50, b=10), title="What the scanner measures")
    return fig
