"""Sample-level DP inside each site: DP-SGD through Opacus.

Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar and Zhang, "Deep Learning with
Differential Privacy", ACM CCS 2016. Every local step draws a Poisson sample of the
site's images (each with probability ``q = batch_size / n``), clips each image's
gradient to ``max_grad_norm``, adds Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm`` to their sum, then steps. Each *patient image*
is protected at its own site; the epsilon of a site grows with the steps it has taken
over all rounds and is reported per site in ``History.rounds`` (``epsilon/<site>``)
with the largest as ``epsilon``.

Per-sample gradients come from Opacus' ``GradSampleModule`` and clipping and noise from
its ``DPOptimizer`` (Yousefpour et al., "Opacus: User-Friendly Differential Privacy
Library in PyTorch", 2021). Opacus needs models without BatchNorm: the default
``"cnn"`` (GroupNorm) and ``"mlp"`` work, ``"cnn-bn"`` does not.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..strategies.base import ClientContext, State, Update
from ..strategies.fedavg import FedAvg
from ..training import TrainConfig
from .accountant import ACCOUNTANTS, epsilon, require_opacus

__all__ = ["DPSGD", "dp_sgd_epochs"]

_STEPS = "steps"  # a site's DP-SGD steps so far, in its state


def dp_sgd_epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                  generator: torch.Generator, noise_multiplier: float,
                  max_grad_norm: float) -> dict[str, float]:
    """DP-SGD on ``(x, y)`` in place: ``config``'s steps (or epochs of ``n / batch``
    Poisson-sampled steps), per-sample clipping and Gaussian noise. Returns the mean
    loss, the steps taken and the sampling rate.

    Parameters
    ----------
    model : nn.Module
        The site's model, trained in place (no BatchNorm: Opacus refuses it).
    x, y : tensor
        The site's images and labels.
    config : TrainConfig
        Optimiser, batch size (the expected Poisson batch) and steps or epochs.
    generator : torch.Generator
        Draws the Poisson samples and seeds the noise.
    noise_multiplier : float
        Noise standard deviation over ``max_grad_norm``.
    max_grad_norm : float
        Bound on each sample's gradient norm.
    """
    require_opacus()
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    n = len(y)
    q = min(1.0, config.batch_size / n)
    steps = config.steps or config.epochs * math.ceil(n / config.batch_size)
    noise_gen = torch.Generator(device=x.device).manual_seed(
        int(torch.randint(2**62, (1,), generator=generator)))
    gsm = GradSampleModule(model)
    total, used = 0.0, 0
    with warnings.catch_warnings():
        # Opacus' hooks fire on inputs that need no gradient: expected, harmless here
        warnings.filterwarnings("ignore", message="Full backward hook")
        try:
            gsm.train()
            opt = DPOptimizer(config.make_optimizer(gsm.parameters()),
                              noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                              expected_batch_size=config.batch_size, generator=noise_gen)
            for _ in range(steps):
                pick = torch.rand(n, generator=generator) < q
                idx = pick.nonzero().squeeze(1).to(x.device)
                if len(idx) == 0:  # an empty Poisson sample: still a step for the accountant
                    continue
                loss = F.cross_entropy(gsm(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, used = total + float(loss.detach()), used + 1
        finally:
            gsm._close()  # remove Opacus' hooks: the model is reused by other sites
    return {"train_loss": total / max(used, 1), "steps": float(steps), "sample_rate": q}


@dataclass(frozen=True)
class DPSGD(FedAvg):
    """FedAvg whose sites train with DP-SGD.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation over ``max_grad_norm``, > 0.
    max_grad_norm : float
        Bound on each image's gradient norm, > 0.
    delta : float
        The delta of each site's reported (epsilon, delta) guarantee; keep it below
        1 / (images at the site).
    accountant : {"rdp", "prv"}
        Opacus accountant.
    """

    name: ClassVar[str] = "dpsgd"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    accountant: Literal["rdp", "prv"] = "rdp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.noise_multiplier > 0:
            raise ValueError(f"noise_multiplier must be > 0, got {self.noise_multiplier}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")

    def init_site_state(self, global_state: State) -> State:
        return {_STEPS: torch.zeros((), dtype=torch.int64)}

    def site_train(self, model, x, y, config, generator, **hooks):
        if any(h is not None for h in hooks.values()):
            raise ValueError("DPSGD runs plain DP-SGD locally; it takes no extra_loss or "
                             "after_backward hooks")
        return dp_sgd_epochs(model, x, y, config, generator, self.noise_multiplier,
                             self.max_grad_norm)

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = ctx.train()
        steps = int(ctx.site_state[_STEPS]) + int(metrics["steps"])
        ctx.site_state[_STEPS] = torch.tensor(steps)
        metrics["epsilon"] = epsilon(self.noise_multiplier, metrics["sample_rate"], steps,
                                     self.delta, self.accountant)
        return ctx.update(ctx.model_state(), metrics)

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        new_global, _ = super().aggregate(global_state, updates, server_state)
        eps = {**server_state.get("epsilon", {}),
               **{u.site: torch.tensor(u.metrics["epsilon"], dtype=torch.float64)
                  for u in updates}}
        return new_global, {**server_state, "epsilon": eps}

    def round_report(self, rnd: int, server_state) -> dict[str, float]:
        eps = {f"epsilon/{site}": float(v)
               for site, v in server_state.get("epsilon", {}).items()}
        return {**eps, "epsilon": max(eps.values(), default=0.0), "delta": self.delta}
