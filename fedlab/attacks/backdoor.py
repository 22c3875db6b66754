"""Backdoor: a small trigger patch that makes the global model answer a chosen label.

Bagdasaryan, Veit, Hua, Estrin and Shmatikov, "How To Backdoor Federated Learning",
AISTATS 2020; the pixel-pattern trigger of Gu, Dolan-Gavitt and Garg, "BadNets", 2017.
A malicious site stamps a small pattern on part of its training images and labels them
with the ``target`` class, then trains honestly on that data. The federated model
learns both tasks: clean images are classified as before (so accuracy does not give
the attack away) while any image carrying the patch is pushed to ``target``. The
attack's success rate is the share of triggered test images *of other classes* that
the model assigns to ``target``. Boosting the malicious update (``Byzantine(kind=
"scale")``, "model replacement") keeps the backdoor alive against the honest majority.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..data.base import Split
from ..sites import Site
from ..training import predict, resolve_device

__all__ = ["Trigger", "Backdoor"]

Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]


@dataclass(frozen=True)
class Trigger:
    """A square patch stamped on images (shape ``(N, C, H, W)``, values in [0, 1]).

    Parameters
    ----------
    size : int
        Side of the patch in pixels (>= 1).
    corner : {"bottom-right", "bottom-left", "top-right", "top-left"}
        Where it goes, ``margin`` pixels from the edges.
    pattern : {"checker", "solid"}
        A black-and-white checkerboard (unlike anything in an X-ray) or a white square.
    margin : int
        Gap between the patch and the image border.
    """

    size: int = 4
    corner: Corner = "bottom-right"
    pattern: Literal["checker", "solid"] = "checker"
    margin: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be an integer >= 1, got {self.size!r}")
        if self.corner not in ("bottom-right", "bottom-left", "top-right", "top-left"):
            raise ValueError(f"corner must be one of 'bottom-right', 'bottom-left', "
                             f"'top-right', 'top-left', got {self.corner!r}")
        if self.pattern not in ("checker", "solid"):
            raise ValueError(f"pattern must be 'checker' or 'solid', got {self.pattern!r}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def patch(self) -> np.ndarray:
        """The ``(size, size)`` pattern, values 0 and 1."""
        if self.pattern == "solid":
            return np.ones((self.size, self.size), dtype=np.float32)
        i = np.arange(self.size)
        return ((i[:, None] + i[None, :]) % 2 == 0).astype(np.float32)

    def apply(self, images):
        """A copy of ``images`` (numpy array or tensor) with the patch stamped on."""
        h, w = images.shape[-2:]
        if self.size + self.margin > min(h, w):
            raise ValueError(f"a trigger of size {self.size} with margin {self.margin} "
                             f"does not fit {h}x{w} images")
        r0 = self.margin if self.corner.startswith("top") else h - self.margin - self.size
        c0 = self.margin if self.corner.endswith("left") else w - self.margin - self.size
        out = images.clone() if torch.is_tensor(images) else np.array(images, copy=True)
        patch = self.patch()
        out[..., r0:r0 + self.size, c0:c0 + self.size] = (
            torch.as_tensor(patch, dtype=out.dtype, device=out.device)
            if torch.is_tensor(out) else patch)
        return out


@dataclass(frozen=True)
class Backdoor:
    """A backdoor attack: which class, which trigger, how much of the site's data.

    Parameters
    ----------
    target : int
        The label triggered images should get.
    trigger : Trigger
        The patch.
    fraction : float
        Share of the malicious site's training images (at random) that get the trigger
        and the ``target`` label, in (0, 1]; the rest stay clean, so the model keeps
        its main-task accuracy.
    """

    target: int = 0
    trigger: Trigger = field(default_factory=Trigger)
    fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if not isinstance(self.target, int) or self.target < 0:
            raise ValueError(f"target must be a class index >= 0, got {self.target!r}")

    def _check(self, site: Site) -> None:
        if self.target >= len(site.classes):
            raise ValueError(f"target must be a class index in [0, {len(site.classes)}), "
                             f"got {self.target}")

    def poison(self, site: Site, seed: int = 0) -> Site:
        """A copy of ``site`` whose training data carry the backdoor (val, test clean)."""
        self._check(site)
        train = site.split("train")
        chosen = np.random.default_rng(seed).random(len(train)) < self.fraction
        images, labels = train.images.copy(), train.labels.copy()
        images[chosen] = self.trigger.apply(images[chosen])
        labels[chosen] = self.target
        return site.replace(train=Split(images, labels))

    def triggered(self, site: Site, split: str = "test",
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The site's ``split`` images of classes other than ``target``, with the trigger,
        and their true labels (evaluation runs at the site)."""
        self._check(site)
        x, y = site.tensors(split, device)
        keep = y != self.target
        return self.trigger.apply(x[keep]), y[keep]

    def success_rate(self, model: nn.Module, sites: Sequence[Site], state=None,
                     split: str = "test", device: str = "auto") -> float:
        """Share of triggered non-target images, over all ``sites``, classified as
        ``target`` by ``model`` (with weights ``state``, e.g. ``history.final_state``).
        NaN when the sites hold no such image."""
        dev = resolve_device(device)
        model = model.to(dev)
        if state is not None:
            model.load_state_dict(state)
        hits = total = 0
        for site in sites:
            x, y = self.triggered(site, split, dev)
            if len(y):
                probs, _ = predict(model, x, y)
                hits += int((probs.argmax(axis=1) == self.target).sum())
                total += len(y)
        return hits / total if total else float("nan")
