"""Gradient inversion: a curious server rebuilds a site's images from its update.

Zhu, Liu and Han, "Deep Leakage from Gradients", NeurIPS 2019 (DLG); Zhao, Mopuri and Bilen,
"iDLG: Improved Deep Leakage from Gradients", arXiv 2020 (label from the last bias); Geiping,
Bauermeister, Dröge and Moeller, "Inverting Gradients - How easy is it to break privacy in
federated learning?", NeurIPS 2020 (cosine distance, total variation prior). The server knows
the model it sent and sees the site's update ``delta = w_after - w_before``. After one local
SGD step on one batch, ``-delta / lr`` *is* the batch gradient; the attack optimises dummy
images until their gradient points the same way (cosine distance), with a small total-variation
penalty that favours natural-looking images. The attack assumes a single step: more local
steps, larger batches and DP noise all make the update a worse stand-in for one image's
gradient. :func:`psnr` and :func:`ssim` score the reconstruction against the real images.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import imaging

__all__ = ["InversionConfig", "site_update", "infer_labels", "invert_update", "psnr", "ssim",
           "match_reconstructions", "mean_image_baseline", "defence_sweep",
           "plot_reconstructions"]

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class InversionConfig:
    """Settings of the inversion attack.

    Parameters
    ----------
    iterations : int
        Optimisation steps on the dummy images (>= 1).
    lr : float
        Adam step size on the dummy pixels.
    tv : float
        Weight of the total-variation prior (0 disables it).
    seed : int
        Seeds the random initial images.
    """

    iterations: int = 300
    lr: float = 0.1
    tv: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.tv >= 0:
            raise ValueError(f"tv must be >= 0, got {self.tv}")


def site_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1,
                steps: int = 1) -> State:
    """What a site sends: ``w_after - w_before`` after ``steps`` SGD steps of size ``lr``
    on the batch ``(x, y)`` (the whole batch each step), from ``model``'s weights."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    local = copy.deepcopy(model)
    local.eval()  # no dropout: the update is a deterministic function of the batch
    opt = torch.optim.SGD(local.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(local(x), y).backward()
        opt.step()
    before = dict(model.named_parameters())
    return {n: (p - before[n]).detach() for n, p in local.named_parameters()}


def infer_labels(update: State, model: nn.Module, batch_size: int) -> torch.Tensor:
    """Labels read from the last layer's bias update (iDLG): the gradient of the
    cross-entropy on a bias is ``p_c - y_c``, negative only for the labels present,
    so the update (minus the gradient) is largest there; for larger batches take the
    ``batch_size`` largest, a heuristic once a class repeats."""
    last_bias = [n for n, p in model.named_parameters() if n.endswith("bias")][-1]
    order = torch.argsort(update[last_bias], descending=True)
    n_classes = len(order)
    return order.repeat(batch_size // n_classes + 1)[:batch_size].sort().values


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean()
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def invert_update(model: nn.Module, update: State, shape: tuple[int, ...],
                  labels: torch.Tensor | None = None,
                  config: InversionConfig = InversionConfig()) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
    """Reconstruct the batch behind ``update`` (from :func:`site_update`).

    Parameters
    ----------
    model : nn.Module
        The model the site started from (what the server sent).
    update : dict
        The site's update, parameter name -> tensor.
    shape : tuple
        Shape of the batch to rebuild, e.g. ``(1, 1, 28, 28)``.
    labels : tensor, optional
        The batch's labels; inferred with :func:`infer_labels` when omitted.
    config : InversionConfig
        Iterations, step size, prior weight, seed.

    Returns
    -------
    images, labels : tensors
        The reconstruction (values in [0, 1]) and the labels used.
    """
    net = copy.deepcopy(model).eval()
    params = [p for _, p in net.named_parameters()]
    target = [-update[n] for n, _ in net.named_parameters()]  # the descent direction
    t_norm = torch.sqrt(sum((t ** 2).sum() for t in target))
    if labels is None:
        labels = infer_labels(update, net, shape[0])
    gen = torch.Generator().manual_seed(config.seed)
    dummy = torch.rand(shape, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([dummy], lr=config.lr)
    for _ in range(config.iterations):
        opt.zero_grad()
        grads = torch.autograd.grad(F.cross_entropy(net(dummy), labels), params,
                                    create_graph=True)
        dot = sum((g * t).sum() for g, t in zip(grads, target, strict=True))
        g_norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        loss = 1 - dot / (g_norm * t_norm + 1e-12) + config.tv * _total_variation(dummy)
        loss.backward()
        opt.step()
        with torch.no_grad():
            dummy.clamp_(0, 1)
    return dummy.detach(), labels


def psnr(estimate: torch.Tensor, truth: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (higher is closer; identical images give inf), the
    mean over the images of a batch (:func:`fedlab.imaging.psnr`, MONAI's ``PSNRMetric``).

    ``estimate``, ``truth``: images of one shape, pixel values spanning ``data_range``."""
    return float(imaging.psnr(estimate, truth, data_range).mean())


def ssim(estimate: torch.Tensor, truth: torch.Tensor, data_range: float = 1.0,
         window: int = imaging.SSIM_WINDOW, sigma: float = 1.5) -> float:
    """Mean structural similarity of two images or batches: 1 when identical
    (:func:`fedlab.imaging.ssim`, MONAI's ``SSIMMetric``, Gaussian window, valid part).
    ``estimate``, ``truth``, ``data_range``: as for :func:`psnr`; ``window``, ``sigma``:
    window side (pixels), std."""
    return float(imaging.ssim(estimate, truth, data_range, window, sigma).mean())


def match_reconstructions(estimate: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Score a reconstructed batch: each real image against its best-matching
    reconstruction (a batch comes back in any order); mean PSNR and SSIM."""
    ps, ss = [], []
    for t in truth:
        scores = [psnr(e, t) for e in estimate]
        best = max(range(len(scores)), key=scores.__getitem__)
        ps.append(scores[best])
        ss.append(ssim(estimate[best], t))
    return {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss)}


def mean_image_baseline(pool: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Score the trivial attack "guess the average patient": the mean image of ``pool``
    (e.g. a site's training images, or public images of the same kind) offered as the
    reconstruction of every image of ``truth``, scored by :func:`match_reconstructions`.
    An inversion that does not beat it has learnt nothing about the particular images."""
    guess = pool.double().mean(0, keepdim=True).to(truth.dtype)
    return match_reconstructions(guess, truth)


def defence_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_sizes: Sequence[int] = (1, 2, 4, 8), local_steps: Sequence[int] = (3, 10),
                  noise_stds: Sequence[float] = (1e-3, 1e-2), lr: float = 0.1,
                  config: InversionConfig = InversionConfig(),
                  noise_seed: int = 0) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Invert a site's update under one defence at a time, everything else as the
    undefended one-image, one-step update (the first image of ``x``).

    Rows: ``batch size`` (the first ``b`` images of ``x``), ``local steps`` (one image),
    ``noise std, no clipping`` (Gaussian noise of that standard deviation added to each
    weight of the *unclipped* one-image update: noise without a sensitivity bound, so no
    DP guarantee). Returns the rows (``defence``, ``value``, ``psnr``, ``ssim``) and,
    per row, the reconstruction of the first image (for :func:`plot_reconstructions`).
    """
    from ..privacy.dp import add_noise  # lazy: the attack module needs no strategies

    def one(batch: int = 1, steps: int = 1, noise: float = 0.0):
        xb, yb = x[:batch], y[:batch]
        update = site_update(model, xb, yb, lr=lr, steps=steps)
        if noise > 0:
            update = add_noise(update, noise, torch.Generator().manual_seed(noise_seed))
        est, _ = invert_update(model, update, tuple(xb.shape), config=config)
        return match_reconstructions(est, xb), est

    settings = ([("batch size", f"{b:g}", f"batch of {b}", {"batch": b}) for b in batch_sizes]
                + [("local steps", f"{s:g}", f"{s} local steps", {"steps": s})
                   for s in local_steps]
                + [("noise std, no clipping", f"{n:g}", f"noise {n:g}", {"noise": n})
                   for n in noise_stds])
    rows, examples = [], {}
    for defence, value, label, kw in settings:
        score, est = one(**kw)
        rows.append({"defence": defence, "value": value, **score})
        examples[label] = est[:1]
    return rows, examples


def plot_reconstructions(rows: dict[str, torch.Tensor], title: str = ""):
    """A grid of images: one row per entry of ``rows`` (a batch ``(B, C, H, W)`` in
    [0, 1]; e.g. the real images, then reconstructions), the row name in each title."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = max(len(v) for v in rows.values())
    titles = [name if k == 0 else "" for name, v in rows.items() for k in range(cols)]
    fig = make_subplots(rows=len(rows), cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.08)
    for r, batch in enumerate(rows.values()):
        for c, img in enumerate(batch):
            pixels = np.round(img.detach().clamp(0, 1).cpu().numpy()[0] * 255).astype(np.uint8)
            fig.add_trace(go.Image(z=np.repeat(pixels[..., None], 3, axis=-1),
                                   hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    fig.update_layout(title=title or None, height=140 * len(rows) + 60,
                      width=max(120 * cols, 300) + 40, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig
