"""Acquisition shift: every site images its patients with its own "scanner".

Hospitals differ in scanners and protocols, so the same anatomy looks different from
site to site (feature shift). A :class:`Scanner` is a fixed chain of MONAI array
transforms, applied in the order of an acquisition:

1. ``resolution`` — lower resolution: down-sample by this factor (area), then up-sample
   back (bilinear) (``monai.transforms.Resize``);
2. ``blur_sigma`` — Gaussian point-spread blur in pixels (``GaussianSmooth``);
3. ``gamma`` — detector response ``x ** gamma`` on the fixed ``[0, 1]`` range (MONAI's
   ``AdjustContrast`` rescales by each array's own min/max, which would make the result
   depend on the rest of the batch, so the power is applied directly);
4. ``gain`` — intensity scale ``x * gain`` (``ScaleIntensity(factor=gain - 1)``);
5. ``noise_std`` — additive Gaussian noise (``RandGaussianNoise``, seeded per site and
   split), then clipping to ``[0, 1]``; the result is ``float32``.

:class:`AcquisitionShift` draws one scanner per site from one ``strength`` knob in
``[0, 1]`` (0: every scanner is the identity). MONAI is imported only when a scanner
with an effect runs, so ``import fedlab`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .base import Split

__all__ = ["AcquisitionShift", "Scanner", "apply_shift", "EFFECTS"]

Effect = Literal["gain", "gamma", "noise", "blur", "resolution"]
EFFECTS: tuple[Effect, ...] = ("gain", "gamma", "noise", "blur", "resolution")
# Range of each effect at strength 1 (log-scale for gain and gamma).
_MAX = {"gain": 0.4, "gamma": 0.7, "noise": 0.1, "blur": 1.5, "resolution": 0.6}


@dataclass(frozen=True)
class Scanner:
    """One site's acquisition: parameters, and ``apply`` to images.

    Parameters
    ----------
    gain : float
        Intensity scale, > 0 (1: none).
    gamma : float
        Exponent of the response curve, > 0 (1: none).
    noise_std : float
        Standard deviation of additive Gaussian noise, >= 0.
    blur_sigma : float
        Gaussian blur in pixels, >= 0.
    resolution : float
        Fraction of the original resolution kept, in (0, 1].
    seed : int
        Seed of the scanner's noise (with the split index).
    """

    gain: float = 1.0
    gamma: float = 1.0
    noise_std: float = 0.0
    blur_sigma: float = 0.0
    resolution: float = 1.0
    seed: int = 0

    @property
    def is_identity(self) -> bool:
        return (self.gain == 1.0 and self.gamma == 1.0 and self.noise_std == 0.0
                and self.blur_sigma == 0.0 and self.resolution == 1.0)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def apply(self, images: np.ndarray, stream: int = 0) -> np.ndarray:
        """The images ``(N, C, H, W)`` (or volumes ``(N, C, D, H, W)``: blur, down- and
        up-sampling in 3-D) as this scanner acquires them.

        ``stream`` (0 train, 1 val, 2 test) gives each split its own noise; the same
        scanner, images and stream always give the same result.
        """
        if self.is_identity or len(images) == 0:
            return images
        from monai.transforms import GaussianSmooth, RandGaussianNoise, Resize, ScaleIntensity

        n, c, *sides = images.shape
        x = np.asarray(images, dtype=np.float32).reshape(n * c, *sides)
        if self.resolution < 1.0:
            low = tuple(max(2, round(s * self.resolution)) for s in sides)
            x = _np(Resize(low, mode="area")(x))
            x = _np(Resize(tuple(sides), mode="bilinear" if len(sides) == 2 else "trilinear",
                           align_corners=False)(x))
        if self.blur_sigma > 0:
            x = _np(GaussianSmooth(sigma=self.blur_sigma)(x))
        if self.gamma != 1.0:
            x = np.clip(x, 0.0, 1.0) ** self.gamma
        if self.gain != 1.0:
            x = _np(ScaleIntensity(minv=None, maxv=None, factor=self.gain - 1.0)(x))
        if self.noise_std > 0:
            noise = RandGaussianNoise(prob=1.0, std=self.noise_std, sample_std=False)
            noise.set_random_state(seed=int(np.random.SeedSequence(
                [self.seed, stream]).generate_state(1)[0]))
            x = _np(noise(x))
        return np.clip(x, 0.0, 1.0).astype(np.float32).reshape(n, c, *sides)


def _np(x) -> np.ndarray:
    """MONAI returns MetaTensors; back to a plain numpy array."""
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class AcquisitionShift:
    """A distinct scanner per site, from one ``strength`` knob.

    For each effect, the sites' positions in its range are spread by Latin-hypercube
    sampling (one site per stratum, strata shuffled), so no two sites share a scanner.
    At ``strength`` ``s``: gain and gamma are ``exp(s * m * u)`` with ``u`` in
    ``[-1, 1]`` and ``m`` = 0.4 (gain, about 0.67-1.49 at ``s=1``) and 0.7 (gamma, about
    0.5-2.0); noise std up to ``0.1 s``; blur sigma up to ``1.5 s`` pixels; resolution
    down to ``1 - 0.6 s`` of the original.

    Parameters
    ----------
    strength : float
        In ``[0, 1]``; 0 means no shift at all (images unchanged).
    effects : tuple of {"gain", "gamma", "noise", "blur", "resolution"}
        The effects that vary between sites (default: all); the others stay identity.
    """

    strength: float = 0.5
    effects: tuple[Effect, ...] = EFFECTS

    def __post_init__(self) -> None:
        ok = isinstance(self.strength, (int, float)) and math.isfinite(self.strength)
        if not ok or not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be a number in [0, 1], got {self.strength!r}")
        unknown = [e for e in self.effects if e not in EFFECTS]
        if isinstance(self.effects, str) or unknown:
            raise ValueError(f"effects must be a tuple of {EFFECTS}, got {self.effects!r}")

    def scanners(self, n_sites: int, rng: np.random.Generator) -> list[Scanner]:
        """One scanner per site, drawn from ``rng`` (the split's generator)."""
        u = {e: (rng.permutation(n_sites) + rng.uniform(size=n_sites)) / n_sites
             for e in EFFECTS}
        seeds = rng.integers(0, 2**31 - 1, size=n_sites)
        s = float(self.strength)

        def amount(effect: str, i: int, signed: bool) -> float:
            if effect not in self.effects:
                return 0.0
            v = 2.0 * u[effect][i] - 1.0 if signed else u[effect][i]
            return s * _MAX[effect] * v

        return [Scanner(gain=math.exp(amount("gain", i, True)),
                        gamma=math.exp(amount("gamma", i, True)),
                        noise_std=amount("noise", i, False),
                        blur_sigma=amount("blur", i, False),
                        resolution=1.0 - amount("resolution", i, False),
                        seed=int(seeds[i]))
                for i in range(n_sites)]


def apply_shift(federation, shift: AcquisitionShift, seed: int = 0):
    """A copy of ``federation`` whose sites image through their own scanners.

    For federations not made by :func:`fedlab.data.split` (e.g. natural sites from
    :func:`fedlab.data.from_folders`). Scanners come from ``default_rng(seed)``; the
    result's ``scanners`` maps site names to them.

    Parameters
    ----------
    federation : Federation
        The sites to re-image (left unchanged).
    shift : AcquisitionShift
        How the sites' scanners differ.
    seed : int
        Seed of the scanners' draw (their settings and their noise seeds).
    """
    from ..sites import SPLITS, Federation, Site

    scanners = shift.scanners(len(federation), np.random.default_rng(seed))
    sites = []
    for site, scanner in zip(federation, scanners, strict=True):
        parts = [site.split(s) for s in SPLITS]  # data preparation, at the site
        sites.append(Site(site.name, *(Split(scanner.apply(p.images, k), p.labels)
                                       for k, p in enumerate(parts)), classes=site.classes))
    out = Federation(sites, dataset=federation.dataset,
                     scheme=" + ".join(x for x in (federation.scheme, repr(shift)) if x),
                     seed=federation.seed)
    out.scanners = dict(zip(out.names, scanners, strict=True))
    return out
