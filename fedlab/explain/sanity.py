"""Sanity checks for saliency maps: does a map explain the *model*, or only the image?

- :func:`randomization_check`: the model-parameter randomisation test of Adebayo et al.
  ("Sanity Checks for Saliency Maps", NeurIPS 2018). A method whose maps barely change
  when the trained weights are replaced by random ones shows the image's edges, not what
  the model learned. Agreement *between* methods is no evidence of faithfulness; this
  test is.
- :func:`corner_artefact`: a site whose images of one class carry a bright square in a
  corner — a planted shortcut (a scanner label that leaks the diagnosis) for checking
  whether saliency finds it (``mass_in(maps, border_mask(...))``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import Split
from ..models import reinitialised
from ..sites import SPLITS, Site
from .agreement import agreement
from .saliency import METHODS, saliency

__all__ = ["randomized_model", "randomization_check", "corner_artefact"]


def randomized_model(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (its trained weights gone).

    The global random generator is left as it was (the draw happens in a forked
    generator state seeded with ``seed``).
    """
    return reinitialised(model, seed).eval()


def randomization_check(model: nn.Module, images, methods: Sequence[str] = METHODS,
                        seed: int = 0, top: float = 0.1) -> pd.DataFrame:
    """Agreement of each method's maps for the trained ``model`` and a randomised copy.

    Both maps explain the class the *trained* model predicts, on the same images.
    Returns one row per method: mean ``rank_correlation`` and ``top_overlap`` over the
    images. High values mean the method is insensitive to what the model learned.

    ``images`` are ``(N, C, H, W)``; ``methods`` are names of :data:`METHODS`; ``seed``
    seeds the random weights (:func:`randomized_model`); ``top`` is the share of most
    salient pixels for :func:`~fedlab.explain.top_overlap`.
    """
    model = model.eval()
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    with torch.no_grad():
        target = model(x).argmax(1)
    random_net = randomized_model(model, seed)
    rows = {}
    for method in methods:
        trained = saliency(model, x, method, target=target)
        shuffled = saliency(random_net, x, method, target=target)
        rows[method] = agreement(trained, shuffled, top).mean()
    table = pd.DataFrame(rows).T
    table.index.name = "method"
    return table


def corner_artefact(site: Site, label: int = 1, size: int = 3, value: float = 1.0,
                    splits: Sequence[str] = ("train",), name: str | None = None) -> Site:
    """A copy of ``site`` whose images of class ``label`` carry a ``size`` x ``size``
    square of intensity ``value`` in the top-left corner, in ``splits`` only (by default
    the training split, so the test split shows whether the model relies on it).
    ``name`` names the new site (default: ``site``'s name)."""
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"splits must be among {SPLITS}, got {sorted(unknown)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    parts = {}
    for s in SPLITS:
        x, y = site.tensors(s)
        images, labels = x.numpy().copy(), y.numpy().copy()
        if s in splits:
            images[labels == label, ..., :size, :size] = value
        parts[s] = Split(images, labels)
    return Site(name or site.name, parts["train"], parts["val"], parts["test"], site.classes)
