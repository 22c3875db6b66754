"""Reconstruction tasks from any image dataset: undersampled k-space in, the fully
sampled image out.

:func:`make_reconstruction` turns a whole dataset into one (every image through the
same :class:`~fedlab.data.kspace.Acquisition`); :func:`undersample` gives every site of
a federation its own protocol (acceleration, mask, noise), after any partition: label
skew and quantity skew (``fl.data.split``) decide *which* patients a hospital has, the
acquisition *how* its scanner measures them. The sites' labels become the target
images, so the engine trains and scores them as a reconstruction task (L1 loss; PSNR,
SSIM and NMSE per site, beside the zero-filled baseline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..sites import SPLITS, Federation, Site
from .acquisition import Acquisition
from .base import ImageDataset, Split

__all__ = ["make_reconstruction", "undersample", "RECONSTRUCTION_CLASSES"]

#: the "classes" of a reconstruction task: one output channel, the image
RECONSTRUCTION_CLASSES = ("image",)


def _as_acquisition(value, name: str) -> Acquisition:
    if isinstance(value, Acquisition):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Acquisition(acceleration=float(value))
    raise TypeError(f"{name} must be an Acquisition or an acceleration (a number >= 1), "
                    f"got {type(value).__name__}")


def _check_source(labels: np.ndarray, where: str) -> None:
    if labels.ndim != 1:
        raise ValueError(f"{where} must hold classification images (labels (N,)), not masks "
                         "or reconstruction targets: undersample the clean images")


def _undersample_split(part: Split, acquisition: Acquisition, stream: int) -> Split:
    inputs, targets = acquisition.apply(part.images, stream)
    return Split(inputs, targets)


def make_reconstruction(data: ImageDataset, acquisition: Acquisition | float | None = None,
                        **options) -> ImageDataset:
    """``data`` as a reconstruction task: each split's images pass through one
    acquisition; the inputs are the zero-filled images (and the mask, last channel),
    the labels the fully sampled images ``(N, 1, H, W)``.

    Parameters
    ----------
    data : ImageDataset
        Clean images, e.g. ``fl.data.load("pneumoniamnist")`` or ``make_synthetic()``.
    acquisition : Acquisition or float, optional
        The protocol, or just an acceleration; default ``Acquisition(**options)``.
    **options
        The fields of :class:`~fedlab.data.kspace.Acquisition` (``acceleration=4``,
        ``mask="cartesian"``, ``center_fraction``, ``noise_std``, ``input``, ``seed``)
        when ``acquisition`` is not given.
    """
    if acquisition is not None and options:
        raise TypeError(f"pass an acquisition or its options, not both (got {sorted(options)})")
    acq = Acquisition(**options) if acquisition is None else _as_acquisition(
        acquisition, "acquisition")
    _check_source(data.train.labels, "data")
    splits = {s: _undersample_split(getattr(data, s), acq, k) for k, s in enumerate(SPLITS)}
    return ImageDataset(
        name=f"{data.name}-recon", **splits, classes=RECONSTRUCTION_CLASSES,
        license=data.license, citation=data.citation,
        description=f"{data.description} Undersampled k-space: {acq}.".strip(),
        extra={**data.extra, "task": "reconstruction", "acquisition": acq.as_dict(),
               "source": data.name})


def undersample(sites: Sequence[Site],
                acquisitions: Acquisition | float | Sequence | Mapping,
                seed: int = 0) -> Federation:
    """The sites as reconstruction sites, each scanning with its own protocol.

    ``acquisitions`` is one protocol for all, one per site (a list in site order, or a
    dict by site name), each an :class:`~fedlab.data.kspace.Acquisition` or just an
    acceleration (``[2, 4, 8]``). Every site's masks and noise get their own seed,
    derived from ``seed`` and the site's position, so no two hospitals draw the same
    masks; the result's ``scanners`` maps each site to the acquisition it used.

    Parameters
    ----------
    sites : sequence of Site
        Sites of clean images, e.g. from ``fl.data.split`` (any partition).
    acquisitions : Acquisition, float, list or dict
        The protocols, as above.
    seed : int
        Seed of the sites' masks and noise.
    """
    source, sites = sites, list(sites)
    if not sites:
        raise ValueError("sites must hold at least one Site")
    names = [s.name for s in sites]
    if isinstance(acquisitions, Mapping):
        missing = sorted(set(names) - set(acquisitions))
        extra = sorted(set(acquisitions) - set(names))
        if missing or extra:
            raise ValueError(f"acquisitions must name every site once: missing {missing}, "
                             f"unknown {extra}")
        given = [acquisitions[n] for n in names]
    elif isinstance(acquisitions, Sequence) and not isinstance(acquisitions, str):
        if len(acquisitions) != len(sites):
            raise ValueError(f"acquisitions must hold one entry per site ({len(sites)}), got "
                             f"{len(acquisitions)}")
        given = list(acquisitions)
    else:
        given = [acquisitions] * len(sites)
    seeds = np.random.SeedSequence([seed, 7]).generate_state(len(sites))
    out, used = [], {}
    for i, (site, value) in enumerate(zip(sites, given, strict=True)):
        acq = replace(_as_acquisition(value, f"acquisitions[{i}]"), seed=int(seeds[i]))
        _check_source(site.split("train").labels, f"site {site.name!r}")
        parts = {s: _undersample_split(site.split(s), acq, k) for k, s in enumerate(SPLITS)}
        out.append(Site(site.name, parts["train"], parts["val"], parts["test"],
                        RECONSTRUCTION_CLASSES))
        used[site.name] = acq
    dataset = getattr(source, "dataset", "")
    scheme = getattr(source, "scheme", "")
    fed = Federation(out, dataset=f"{dataset}-recon" if dataset else "reconstruction",
                     scheme=f"{scheme} + undersampled" if scheme else "undersampled",
                     seed=getattr(source, "seed", None))
    fed.scanners = used
    return fed
