"""k-space: what an MRI scanner measures, how it is undersampled, and what a
reconstruction may trust.

An MRI scanner does not take a picture: it measures the image's 2D Fourier transform,
*k-space*, one line (phase-encoding step) after another. Measuring every line takes
time; measuring one line in ``R`` is ``R`` times faster (acceleration ``R``) but the
inverse transform of the zero-filled k-space, the *zero-filled* image, shows aliasing
and blur. A reconstruction network learns to remove them.

An :class:`~fedlab.data.acquisition.Acquisition` is one hospital's protocol:
acceleration, sampling pattern, size of the fully sampled centre, receiver noise.
``apply`` turns clean images into the network's inputs and targets:

- k-space by the centred orthonormal FFT (:func:`fft2c`: energy is preserved, so
  image and k-space noise have the same standard deviation);
- a sampling mask per image (:func:`sampling_mask`): ``"cartesian"`` keeps whole
  lines (columns) with a fully sampled centre and the rest drawn at random, the scheme
  of the fastMRI challenge (Zbontar et al., "fastMRI: An Open Dataset and Benchmarks for
  Accelerated MRI", 2018); ``"variable-density"`` keeps single points, denser near the
  centre (compressed-sensing style, Lustig, Donoho and Pauly, "Sparse MRI", MRM 2007);
- complex Gaussian noise on the measured samples;
- the input: the zero-filled image as real and imaginary channels (``"complex"``) or as
  its magnitude (``"magnitude"``), and always, as the **last channel, the mask itself**
  (k-space coordinates, centre in the middle). So every image carries what was measured
  and where: a data-consistency step (:func:`data_consistency`) needs nothing else,
  and partitioners, sites and executors handle reconstruction data like any other.

The target is the fully sampled image (one channel; colour images are averaged to grey).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MASKS", "INPUTS", "fft2c", "ifft2c", "sampling_mask",
           "zero_filled", "sampling_masks", "measured_acceleration", "data_consistency"]

MASKS: tuple[str, ...] = ("cartesian", "variable-density")
INPUTS: tuple[str, ...] = ("complex", "magnitude")
# input channels: complex (real, imaginary, mask) or magnitude (magnitude, mask)
_CHANNELS = {"complex": 3, "magnitude": 2}


def _shift(x, inverse: bool):
    lib = torch.fft if isinstance(x, torch.Tensor) else np.fft
    kw = {"dim": (-2, -1)} if isinstance(x, torch.Tensor) else {"axes": (-2, -1)}
    return (lib.ifftshift if inverse else lib.fftshift)(x, **kw)


def fft2c(image):
    """Centred orthonormal 2D FFT over the last two axes (numpy array or torch tensor):
    the zero frequency lands in the middle, and ``ifft2c(fft2c(x)) == x``.

    Parameters
    ----------
    image : ndarray or Tensor
        Real or complex images ``(..., H, W)``.
    """
    if isinstance(image, torch.Tensor):
        return _shift(torch.fft.fft2(_shift(image, True), norm="ortho"), False)
    return _shift(np.fft.fft2(_shift(image, True), norm="ortho"), False)


def ifft2c(kspace):
    """The inverse of :func:`fft2c`.

    Parameters
    ----------
    kspace : ndarray or Tensor
        Centred k-space ``(..., H, W)``.
    """
    if isinstance(kspace, torch.Tensor):
        return _shift(torch.fft.ifft2(_shift(kspace, True), norm="ortho"), False)
    return _shift(np.fft.ifft2(_shift(kspace, True), norm="ortho"), False)


def sampling_mask(kind: str, shape: tuple[int, int], acceleration: float,
                  center_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """One sampling mask ``(H, W)`` of 0/1 (``float32``) in centred k-space.

    ``"cartesian"``: whole columns; the ``round(W * center_fraction)`` (at least 1)
    columns around the centre, then columns drawn at random until ``W / acceleration``
    are kept (a fractional target is rounded up or down at random, so the mean over
    many images is exact). ``"variable-density"``: single points; the centre disc of
    ``center_fraction`` of the points, then ``H * W / acceleration`` in all, drawn with
    a Gaussian density around the centre.

    Parameters
    ----------
    kind : {"cartesian", "variable-density"}
        The pattern.
    shape : (int, int)
        Image height and width.
    acceleration : float
        How many times fewer samples than the full k-space (>= 1).
    center_fraction : float
        Share of the lines (points) around the centre that are always measured.
    rng : numpy Generator
        The random draws.
    """
    h, w = shape
    n = w if kind == "cartesian" else h * w
    want = n / acceleration
    target = int(np.floor(want)) + int(rng.random() < want - np.floor(want))
    if kind == "cartesian":
        dist = np.abs(np.arange(w) - w // 2)
    elif kind == "variable-density":
        yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
        dist = np.hypot(yy, xx).ravel()
    else:
        raise ValueError(f"mask must be one of {MASKS}, got {kind!r}")
    n_center = max(1, int(round(n * center_fraction)))
    if n_center > target:
        raise ValueError(f"center_fraction={center_fraction} keeps {n_center} of {n} "
                         f"{'lines' if kind == 'cartesian' else 'points'}, more than "
                         f"acceleration={acceleration} allows ({want:.1f}); lower one of them")
    order = np.argsort(dist, kind="stable")
    keep = np.zeros(n, dtype=bool)
    keep[order[:n_center]] = True
    rest = order[n_center:]
    if kind == "cartesian":
        weights = np.ones(len(rest))
    else:
        weights = np.exp(-0.5 * (dist[rest] / (0.25 * max(h, w))) ** 2)
    keep[rng.choice(rest, size=target - n_center, replace=False, p=weights / weights.sum())] = True
    if kind == "cartesian":
        return np.broadcast_to(keep[None, :], (h, w)).astype(np.float32)
    return keep.reshape(h, w).astype(np.float32)


def _check_inputs(inputs) -> None:
    if inputs.ndim != 4 or inputs.shape[1] not in _CHANNELS.values():
        raise ValueError(f"inputs must be reconstruction inputs (N, 3 or 2, H, W) made by an "
                         f"Acquisition, got shape {tuple(inputs.shape)}")


def zero_filled(inputs):
    """The zero-filled magnitude image ``(N, 1, H, W)`` of reconstruction inputs (numpy
    or torch): the baseline every reconstruction must beat.

    Parameters
    ----------
    inputs : ndarray or Tensor
        What :meth:`Acquisition.apply` returned as inputs.
    """
    _check_inputs(inputs)
    if inputs.shape[1] == _CHANNELS["magnitude"]:
        return inputs[:, :1]
    if isinstance(inputs, torch.Tensor):
        return torch.hypot(inputs[:, 0], inputs[:, 1])[:, None]
    return np.hypot(inputs[:, 0], inputs[:, 1])[:, None]


def sampling_masks(inputs):
    """The sampling mask of each input ``(N, H, W)``: the last channel.

    Parameters
    ----------
    inputs : ndarray or Tensor
        Reconstruction inputs.
    """
    _check_inputs(inputs)
    return inputs[:, -1]


def measured_acceleration(inputs) -> np.ndarray:
    """Acceleration of each input, measured from its mask: samples / measured samples.

    Parameters
    ----------
    inputs : ndarray or Tensor
        Reconstruction inputs.
    """
    masks = sampling_masks(inputs)
    masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else masks
    return masks[0].size / masks.reshape(len(masks), -1).sum(axis=1)


def data_consistency(image: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``image`` (complex ``(N, H, W)``) with its k-space replaced by the measured
    samples wherever the mask measured them: the network may only fill in what the
    scanner did not measure (hard data consistency, as in Schlemper et al., "A Deep
    Cascade of Convolutional Neural Networks for MR Image Reconstruction", IPMI 2017).

    Parameters
    ----------
    image : Tensor
        Complex images ``(N, H, W)``.
    inputs : Tensor
        Complex reconstruction inputs ``(N, 3, H, W)`` (real, imaginary, mask).
    """
    _check_inputs(inputs)
    if inputs.shape[1] != _CHANNELS["complex"]:
        raise ValueError("data consistency needs complex inputs (real, imaginary, mask): "
                         "make the data with Acquisition(input='complex')")
    mask = inputs[:, -1]
    measured = fft2c(torch.complex(inputs[:, 0], inputs[:, 1]))
    kspace = fft2c(image)
    return ifft2c(mask * measured + (1 - mask) * kspace)
