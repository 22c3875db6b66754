"""Image-quality metrics: PSNR, SSIM and NMSE, per image, through MONAI.

One implementation for every place fedlab compares two images: the reconstruction
task's metrics (:func:`reconstruction_metrics`, logged per site and round) and the
gradient-inversion attack's score of a rebuilt patient image. PSNR and SSIM are MONAI's
``PSNRMetric`` and ``SSIMMetric`` (Wang, Bovik, Sheikh and Simoncelli, "Image Quality
Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004), with a
Gaussian window of 7 pixels (sigma 1.5) so that 28x28 images keep a valid interior;
MONAI is imported on first use. NMSE is ``||x - y||^2 / ||y||^2``, the fastMRI
challenge's third metric.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["psnr", "ssim", "nmse", "reconstruction_metrics", "SSIM_WINDOW"]

#: side of SSIM's Gaussian window, in pixels
SSIM_WINDOW = 7


def _images(x) -> torch.Tensor:
    """``(N, C, H, W)`` float64 from an array or tensor of ``(H, W)``, ``(C, H, W)`` or
    ``(N, C, H, W)``."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    t = t.double().cpu()
    while t.ndim < 4:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"images must have 2 to 4 dimensions (N, C, H, W), got {tuple(t.shape)}")
    return t


def _pair(estimate, truth) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _images(estimate), _images(truth)
    if a.shape != b.shape:
        raise ValueError(f"estimate and truth must have one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return a, b


def psnr(estimate, truth, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each image (``inf`` when identical).

    Parameters
    ----------
    estimate, truth : ndarray or Tensor
        Images of one shape, ``(H, W)`` to ``(N, C, H, W)``.
    data_range : float
        The span of the pixel values (1 for images in ``[0, 1]``).
    """
    from monai.metrics import PSNRMetric

    a, b = _pair(estimate, truth)
    return PSNRMetric(max_val=data_range, reduction="none")(a, b).numpy().reshape(-1)


def ssim(estimate, truth, data_range: float = 1.0, window: int = SSIM_WINDOW,
         sigma: float = 1.5) -> np.ndarray:
    """Structural similarity of each image (1 when identical), mean over its window
    positions and channels.

    Parameters
    ----------
    estimate, truth : ndarray or Tensor
        Images of one shape, ``(H, W)`` to ``(N, C, H, W)``, each side at least ``window``.
    data_range : float
        The span of the pixel values.
    window, sigma : int, float
        Side of the Gaussian window (pixels) and its standard deviation.
    """
    from monai.metrics import SSIMMetric

    a, b = _pair(estimate, truth)
    if min(a.shape[-2:]) < window:
        raise ValueError(f"images must be at least {window} pixels a side for SSIM, got "
                         f"{tuple(a.shape[-2:])}")
    metric = SSIMMetric(spatial_dims=2, data_range=data_range, win_size=window,
                        kernel_sigma=sigma, reduction="none")
    return metric(a, b).numpy().reshape(len(a), -1).mean(axis=1)


def nmse(estimate, truth) -> np.ndarray:
    """Normalised mean squared error of each image: ``||estimate - truth||^2 /
    ||truth||^2`` (0 when identical).

    Parameters
    ----------
    estimate, truth : ndarray or Tensor
        Images of one shape, ``(H, W)`` to ``(N, C, H, W)``.
    """
    a, b = _pair(estimate, truth)
    err = ((a - b) ** 2).flatten(1).sum(1)
    return (err / (b**2).flatten(1).sum(1).clamp_min(1e-12)).numpy()


def reconstruction_metrics(pred: np.ndarray, target: np.ndarray, loss_sum: float,
                           zero_filled: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of one reconstruction evaluation: ``loss`` (mean absolute error per
    pixel), the means over images of ``psnr``, ``ssim`` and ``nmse``, and, with
    ``zero_filled``, the same three of the zero-filled baseline (``psnr_zero_filled``,
    ...); ``accuracy`` and ``auc`` are NaN (not defined for images); ``n`` the images.

    Parameters
    ----------
    pred, target : ndarray
        Reconstructed and fully sampled images ``(N, 1, H, W)``.
    loss_sum : float
        Absolute error summed over all pixels.
    zero_filled : ndarray, optional
        The zero-filled images ``(N, 1, H, W)`` of the same inputs.
    """
    n = len(target)
    nan = float("nan")
    out = {"loss": loss_sum / target.size if n else nan, "accuracy": nan, "auc": nan}
    names = ("psnr", "ssim", "nmse")
    for suffix, images in (("", pred), ("_zero_filled", zero_filled)):
        if images is None:
            continue
        if n:
            values = (psnr(images, target), ssim(images, target), nmse(images, target))
            out.update({f"{m}{suffix}": float(np.mean(v))
                        for m, v in zip(names, values, strict=True)})
        else:
            out.update({f"{m}{suffix}": nan for m in names})
    out["n"] = float(n)
    return out
