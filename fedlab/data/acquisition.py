"""One hospital's MRI protocol: acceleration, sampling pattern, centre, noise, and
how it turns clean images into a reconstruction task (see :mod:`fedlab.data.kspace`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .kspace import INPUTS, MASKS, fft2c, ifft2c, sampling_mask

__all__ = ["Acquisition"]

MaskKind = Literal["cartesian", "variable-density"]


@dataclass(frozen=True)
class Acquisition:
    """One hospital's MRI protocol: how its scanner samples k-space.

    Parameters
    ----------
    acceleration : float
        Measure ``1 / acceleration`` of k-space (>= 1; 1 is fully sampled).
    mask : {"cartesian", "variable-density"}
        The sampling pattern (see :func:`sampling_mask`).
    center_fraction : float, optional
        Share of k-space around the centre always measured; default ``0.32 /
        acceleration`` (fastMRI's 0.08 at 4x and 0.04 at 8x).
    noise_std : float
        Standard deviation of the complex Gaussian noise of each measured sample (its
        real and imaginary parts each get ``noise_std / sqrt(2)``), in image
        intensity units (the FFT is orthonormal).
    input : {"complex", "magnitude"}
        The zero-filled image as real and imaginary channels, or as its magnitude.
    seed : int
        Seed of the masks and the noise (with the split's stream).
    """

    acceleration: float = 4.0
    mask: MaskKind = "cartesian"
    center_fraction: float | None = None
    noise_std: float = 0.0
    input: Literal["complex", "magnitude"] = "complex"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.acceleration, bool) or not self.acceleration >= 1:
            raise ValueError(f"acceleration must be a number >= 1, got {self.acceleration!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.center_fraction is not None and not 0 < self.center_fraction < 1:
            raise ValueError(f"center_fraction must be in (0, 1) or None, got "
                             f"{self.center_fraction!r}")
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")

    @property
    def center(self) -> float:
        """The centre fraction in use (the default when ``center_fraction`` is None)."""
        return self.center_fraction if self.center_fraction is not None else min(
            0.32 / self.acceleration, 0.5)

    def as_dict(self) -> dict:
        return asdict(self)

    def masks(self, n: int, shape: tuple[int, int], stream: int = 0) -> np.ndarray:
        """``n`` masks ``(n, H, W)``, one per image, for split ``stream``."""
        rng = np.random.default_rng([self.seed, stream, 0])
        return np.stack([sampling_mask(self.mask, shape, self.acceleration, self.center, rng)
                         for _ in range(n)]) if n else np.zeros((0, *shape), np.float32)

    def apply(self, images: np.ndarray, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of a reconstruction task from clean images ``(N, C, H, W)``.

        Returns ``inputs`` ``(N, 3 or 2, H, W)`` (the zero-filled image's channels, then
        the mask) and ``targets`` ``(N, 1, H, W)``, both ``float32``; ``stream`` (0
        train, 1 val, 2 test) gives each split its own masks and noise.

        Parameters
        ----------
        images : ndarray
            Fully sampled images ``(N, C, H, W)`` (channels are averaged to grey).
        stream : int
            Which split (for the seeds).
        """
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {images.shape}")
        grey = images.astype(np.float64).mean(axis=1)
        masks = self.masks(len(grey), grey.shape[1:], stream)
        kspace = fft2c(grey)
        if self.noise_std > 0:
            rng = np.random.default_rng([self.seed, stream, 1])
            scale = self.noise_std / np.sqrt(2.0)
            kspace = kspace + scale * (rng.standard_normal(kspace.shape)
                                       + 1j * rng.standard_normal(kspace.shape))
        zf = ifft2c(kspace * masks)
        parts = [zf.real, zf.imag] if self.input == "complex" else [np.abs(zf)]
        inputs = np.stack([*parts, masks], axis=1).astype(np.float32)
        return inputs, grey[:, None].astype(np.float32)
