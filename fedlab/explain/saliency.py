"""Saliency maps: which pixels a trained model's prediction depends on.

Three methods, each returning numpy arrays ``(N, H, W)`` scaled to ``[0, 1]`` per image
(1 = most important pixel), deterministic and batched; volumes ``(N, C, D, H, W)`` get
maps ``(N, D, H, W)`` (:func:`fedlab.explain.volume_slices` shows their middle slices):

- ``"gradcam"``: Grad-CAM through MONAI (``monai.visualize.GradCAM``): the class
  gradient-weighted activations of a convolutional layer, up-sampled to the image
  (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017). The layer is found automatically.
- ``"occlusion"``: occlusion sensitivity through MONAI
  (``monai.visualize.OcclusionSensitivity``): how much the probability of the class
  drops when a patch around each pixel is hidden (Zeiler and Fergus, "Visualizing and
  Understanding Convolutional Networks", ECCV 2014).
- ``"integrated_gradients"``: the path integral of the gradient from a baseline image
  to the input (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks",
  ICML 2017); a short own implementation, so no extra dependency (captum) is needed.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

__all__ = ["METHODS", "saliency", "grad_cam", "occlusion", "integrated_gradients",
           "find_target_layer"]

Method = Literal["gradcam", "occlusion", "integrated_gradients"]
METHODS: tuple[str, ...] = ("gradcam", "occlusion", "integrated_gradients")


def _as_tensor(images, model: nn.Module) -> torch.Tensor:
    """The images as a float tensor on the model's device."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim not in (4, 5):
        raise ValueError(f"images must have shape (N, C, H, W) or, for volumes, "
                         f"(N, C, D, H, W), got {tuple(x.shape)}")
    param = next(model.parameters(), None)
    return x.to(param.device) if param is not None else x


def _targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Class to explain per image: the given ones, else the predicted class."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(1)
    t = torch.as_tensor(np.asarray(target)).long().reshape(-1).to(x.device)
    if len(t) == 1:
        t = t.expand(len(x))
    if len(t) != len(x):
        raise ValueError(f"target must be None, one class or one per image, got {len(t)} "
                         f"for {len(x)} images")
    return t


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its own min and max (a flat map becomes all 0)."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    low, high = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    span = np.where(high - low > 0, high - low, 1.0)
    return ((flat - low) / span).reshape(maps.shape).astype(np.float32)


def find_target_layer(model: nn.Module, image_shape: Sequence[int]) -> str:
    """Name of the layer Grad-CAM should use: the last module, called once per forward
    pass, whose output is still a spatial map (``(N, C, h, w)`` with ``h, w > 1``; for
    volumes ``(N, C, d, h, w)``, the last 3-D one).

    Found by one forward pass of ``model`` (its train/eval mode is restored) on a zero
    image of ``image_shape`` ``(C, H, W)`` (a volume: ``(C, D, H, W)``).
    """
    calls: dict[str, int] = {}
    order: list[str] = []
    hooks = []
    for name, mod in model.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            calls[name] = calls.get(name, 0) + 1
            if (isinstance(out, torch.Tensor) and out.ndim == len(image_shape) + 1
                    and min(out.shape[2:]) > 1):
                order.append(name)
        hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters(), None)
            model(torch.zeros(1, *image_shape,
                              device=param.device if param is not None else "cpu"))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    found = [n for n in order if calls[n] == 1]
    if not found:
        raise ValueError(f"{type(model).__name__} has no convolutional layer with a spatial "
                         "output: Grad-CAM needs one; use method='occlusion' or "
                         "'integrated_gradients'")
    return found[-1]


def grad_cam(model: nn.Module, images, target=None, layer: str | None = None) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` (volumes: ``(N, D, H, W)``) in ``[0, 1]`` (MONAI
    ``GradCAM``, which up-samples trilinearly in 3-D).

    ``model``, ``images`` and ``target`` are as for :func:`saliency` (the model is copied,
    so MONAI's hooks stay off it); ``layer`` (a module name) defaults to
    :func:`find_target_layer`. MONAI explains one class per call, so the images are
    grouped by their target class.
    """
    from monai.visualize import GradCAM  # slow import: only when asked for

    net = copy.deepcopy(model).eval()  # MONAI registers hooks: keep the caller's model clean
    x = _as_tensor(images, net)
    layer = layer or find_target_layer(net, x.shape[1:])
    cam = GradCAM(nn_module=net, target_layers=layer, postprocessing=lambda m: m)
    t = _targets(net, x, target)
    out = np.zeros((len(x), *x.shape[2:]), dtype=np.float32)
    with warnings.catch_warnings():  # MONAI's hook warns that inputs need no gradient
        warnings.simplefilter("ignore", UserWarning)
        for c in torch.unique(t).tolist():
            idx = (t == c).nonzero().flatten()
            maps = cam(x[idx], class_idx=int(c))
            out[idx.cpu().numpy()] = maps.detach().float().cpu().numpy()[:, 0]
    return _normalise(out)


def occlusion(model: nn.Module, images, target=None, mask_size: int = 7,
              overlap: float = 0.6, mode: str | float = "mean_img",
              n_batch: int = 128) -> np.ndarray:
    """Occlusion sensitivity maps ``(N, H, W)`` in ``[0, 1]`` (MONAI ``OcclusionSensitivity``).

    Each value is the drop of the target class probability when a ``mask_size`` patch
    around the pixel is replaced (``mode``: ``"mean_img"``, ``"mean_patch"``,
    ``"gaussian"`` or a constant); rises are clipped to 0.

    Parameters
    ----------
    model, images, target
        As for :func:`saliency`.
    mask_size : int
        Side of the square patch, at most the image side.
    overlap : float
        Overlap of neighbouring patches in ``[0, 1)`` (higher: finer maps, slower).
    n_batch : int
        Occluded images per forward pass (memory against speed).
    """
    from monai.visualize import OcclusionSensitivity

    net = model.eval()
    x = _as_tensor(images, net)
    if mask_size < 1 or mask_size > min(x.shape[2:]):
        raise ValueError(f"mask_size must be in [1, {min(x.shape[2:])}], got {mask_size}")
    t = _targets(net, x, target)
    occ = OcclusionSensitivity(nn_module=net, mask_size=mask_size, n_batch=n_batch,
                               verbose=False, mode=mode, overlap=overlap)
    out = np.zeros((len(x), *x.shape[2:]), dtype=np.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MONAI's indexing deprecations
        base = torch.softmax(net(x), 1)
        for i in range(len(x)):
            occ_map, _ = occ(x[i:i + 1])
            occ_map, c = torch.as_tensor(occ_map), int(t[i])
            # (1, classes, H, W) in MONAI 1.6; (1, C, H, W, classes) in older releases
            prob = occ_map[0, 0, ..., c] if occ_map.ndim == x.ndim + 1 else occ_map[0, c]
            drop = base[i, c] - prob
            out[i] = drop.clamp_min(0).float().cpu().numpy()
    return _normalise(out)


def integrated_gradients(model: nn.Module, images, target=None, steps: int = 32,
                         baseline: float = 0.0, raw: bool = False) -> np.ndarray:
    """Integrated gradients from a constant ``baseline`` image.

    ``raw=True`` returns the attributions ``(N, C, H, W)`` themselves, which sum to
    ``logit(x) - logit(baseline)`` of the target class (completeness) up to the Riemann
    error of ``steps`` midpoints; otherwise ``|attribution|`` summed over channels,
    scaled to ``[0, 1]``. ``model``, ``images`` and ``target`` are as for :func:`saliency`;
    ``baseline`` is the constant pixel value of the starting image.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    net = model.eval()
    x = _as_tensor(images, net)
    t = _targets(net, x, target)
    base = torch.full_like(x, float(baseline))
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).tolist()  # midpoints
    total = torch.zeros_like(x)
    for a in alphas:
        path = (base + a * (x - base)).requires_grad_(True)
        score = net(path).gather(1, t[:, None]).sum()
        total += torch.autograd.grad(score, path)[0]
    attr = (x - base) * total / steps
    if raw:
        return attr.cpu().numpy()
    return _normalise(attr.abs().sum(1).cpu().numpy())


def saliency(model: nn.Module, images, method: Method = "gradcam", target=None,
             **options) -> np.ndarray:
    """Saliency maps ``(N, H, W)`` in ``[0, 1]`` of ``model`` for ``images`` ``(N, C, H, W)``.

    Parameters
    ----------
    model : nn.Module
        A trained classifier (e.g. from :func:`build_model`); it is put in eval mode.
    images : array or tensor
        ``(N, C, H, W)`` images, as stored in a :class:`~fedlab.data.Split`.
    method : {"gradcam", "occlusion", "integrated_gradients"}
    target : int, sequence of int or None
        Class to explain for each image; None explains the predicted class.
    **options
        Passed to :func:`grad_cam`, :func:`occlusion` or :func:`integrated_gradients`.
    """
    funcs = {"gradcam": grad_cam, "occlusion": occlusion,
             "integrated_gradients": integrated_gradients}
    if method not in funcs:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return funcs[method](model, images, target=target, **options)
