"""Poisoning by a malicious site: wrong labels in its data, or a forged update.

Two ways a dishonest (or broken) hospital can spoil a federation:

- **Data poisoning**, :func:`flip_labels`: the site trains honestly on data whose labels
  it has changed (e.g. every "pneumonia" marked "normal"). Its update is a genuine
  gradient of the wrong task (Tolpegin, Truex, Gursoy and Liu, "Data Poisoning Attacks
  Against Federated Learning Systems", ESORICS 2020).
- **Model poisoning**, :class:`Byzantine`: the site trains, then sends something else
  in place of its update ``delta = w_local - w_start``: ``-scale * delta`` (sign flip),
  ``scale * delta`` (a boosted update; with a backdoor this is the "model replacement"
  of Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020), Gaussian
  noise of ``scale`` times the honest norm, or NaN (a broken site). Such arbitrary
  updates are the Byzantine failures of Blanchard et al. (NeurIPS 2017).

``Byzantine`` wraps any strategy; honest sites run it unchanged. With FedAvg one such
site is enough to ruin the model; :mod:`fedlab.strategies.robust` holds the defences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ..data.base import Split
from ..sites import Site
from ..strategies.base import ClientContext, State, Update
from ..strategies.wrapper import Wrapper, wraps
from ..training import derive_seed

__all__ = ["flip_labels", "poison_update", "Byzantine", "KINDS"]

Kind = Literal["sign_flip", "scale", "random", "nan"]
KINDS: tuple[str, ...] = ("sign_flip", "scale", "random", "nan")


def flip_labels(site: Site, mapping: Mapping[int, int] | None = None,
                fraction: float = 1.0, seed: int = 0) -> Site:
    """A copy of ``site`` whose training labels are changed (val and test untouched).

    Parameters
    ----------
    site : Site
        The site that turns malicious.
    mapping : dict, optional
        ``{old label: new label}``; labels not in it stay. Default: ``y -> n - 1 - y``
        (for two classes, a swap).
    fraction : float
        Share of the training samples (chosen at random) whose label is mapped, in (0, 1].
    seed : int
        Picks the samples when ``fraction < 1``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n_classes = len(site.classes)
    mapping = dict(mapping) if mapping is not None else {
        c: n_classes - 1 - c for c in range(n_classes)}
    bad = {k: v for k, v in mapping.items() if not (0 <= k < n_classes and 0 <= v < n_classes)}
    if bad:
        raise ValueError(f"mapping must map labels in [0, {n_classes}) to labels in "
                         f"[0, {n_classes}), got {bad}")
    train = site.split("train")
    labels = train.labels.copy()
    chosen = np.random.default_rng(seed).random(len(labels)) < fraction
    lookup = np.arange(n_classes)
    for old, new in mapping.items():
        lookup[old] = new
    labels[chosen] = lookup[labels[chosen]]
    return site.replace(train=Split(train.images.copy(), labels))


def poison_update(delta: State, kind: Kind = "sign_flip", scale: float = 1.0,
                  generator: torch.Generator | None = None) -> State:
    """What a Byzantine site sends in place of its honest change ``delta``.

    ``"sign_flip"``: ``-scale * delta``; ``"scale"``: ``scale * delta``; ``"random"``:
    Gaussian noise whose overall L2 norm is ``scale`` times that of ``delta``;
    ``"nan"``: NaN everywhere. Only floating-point tensors change.

    Parameters
    ----------
    delta : dict of tensors
        The site's honest change (``w_local - w_start``, or its payload if that already
        is a change).
    kind : {"sign_flip", "scale", "random", "nan"}
        The forgery, as above (default ``"sign_flip"``).
    scale : float
        Its factor, > 0 (ignored for ``"nan"``).
    generator : torch.Generator, optional
        Draws the noise of ``"random"``; unused by the other kinds.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    floats = [k for k, v in delta.items() if v.is_floating_point()]
    out = dict(delta)
    if kind == "random":
        noise = {k: torch.randn(delta[k].shape, generator=generator, dtype=torch.float64)
                 for k in floats}
        honest = torch.sqrt(sum((delta[k].double() ** 2).sum() for k in floats))
        drawn = torch.sqrt(sum((n ** 2).sum() for n in noise.values()))
        factor = scale * honest / drawn.clamp_min(1e-12)
        return {**out, **{k: (noise[k] * factor).to(delta[k]) for k in floats}}
    for k in floats:
        v = delta[k]
        out[k] = {"sign_flip": -scale * v, "scale": scale * v,
                  "nan": torch.full_like(v, float("nan"))}[kind]
    return out


@dataclass(frozen=True)
class Byzantine(Wrapper):
    """``base`` with some sites sending forged updates.

    Parameters
    ----------
    base : Strategy or str
        The strategy every site runs (FedAvg by default).
    sites : sequence of str
        Names of the malicious sites.
    kind : {"sign_flip", "scale", "random", "nan"}
        What they send (see :func:`poison_update`).
    scale : float
        The factor of ``kind`` (> 0).
    seed : int
        Seeds the noise of ``"random"`` (per round and site).

    Examples
    --------
    >>> strategy = Byzantine(FedAvg(), sites=("site-3",), kind="sign_flip", scale=3.0)
    """

    name: ClassVar[str] = "byzantine"
    sites: Sequence[str] = ()
    kind: Kind = "sign_flip"
    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        names = (self.sites,) if isinstance(self.sites, str) else tuple(self.sites)
        if not names:
            raise ValueError("sites must name at least one malicious site")
        object.__setattr__(self, "sites", names)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if wraps(self.base, "secagg"):
            raise ValueError("Byzantine around SecAgg would forge masked uploads, which only "
                             "breaks the unmasking: put SecAgg outside, "
                             "SecAgg(Byzantine(...), sites=...)")

    def client_update(self, ctx: ClientContext) -> Update:
        start = ctx.model_state()  # what the site starts from this round
        update = self.base.client_update(ctx)
        if ctx.site not in self.sites:
            return update
        index = self.sites.index(ctx.site)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, ctx.round, index))
        sends_weights = self.base.payload == "weights"
        ref = {k: start[k] if sends_weights and k in start else torch.zeros_like(v)
               for k, v in update.payload.items()}
        delta = {k: v - ref[k] if v.is_floating_point() else v
                 for k, v in update.payload.items()}
        forged = poison_update(delta, self.kind, self.scale, generator)
        update.payload = {k: ref[k] + v if v.is_floating_point() else v
                          for k, v in forged.items()}
        return update

    def bind(self, model: nn.Module, examples: dict[str, int]) -> Byzantine:
        unknown = sorted(set(self.sites) - set(examples))
        if unknown:
            raise ValueError(f"sites must name sites of the federation {list(examples)}, "
                             f"got {unknown}")
        return super().bind(model, examples)
