"""MOON: model-contrastive federated learning.

Li, He and Song, "Model-Contrastive Federated Learning", CVPR 2021. Local training
drifts a site's representation away from the federation's. MOON adds a contrastive
term to the local loss that pulls the representation ``z`` of each image towards the
one the global model gives it (``z_glob``) and pushes it away from the one of the
site's own model of the previous round (``z_prev``)::

    l_con = -log( exp(sim(z, z_glob) / tau) / (exp(sim(z, z_glob) / tau)
                                                + exp(sim(z, z_prev) / tau)) )
    loss  = task loss + mu * l_con          (sim: cosine similarity)

The representation is the input of the model's head (:func:`~fedlab.strategies.sharing.
head_keys`: its last layer with parameters), caught with a forward hook, so MOON works
for any fedlab model; the paper adds a projection head, which here is left out. The
server averages as FedAvg; messages are FedAvg's. A site keeps its previous model (in
its own state); in its first round the previous model is the global one, so the term
is constant and MOON trains as FedAvg.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..training import TrainConfig, task_loss, train_epochs
from .base import ClientContext, Update
from .baselines import OWN, own_model
from .fedavg import FedAvg
from .sharing import head_keys

__all__ = ["MOON", "contrastive_loss", "representation"]


def contrastive_loss(z: torch.Tensor, z_glob: torch.Tensor, z_prev: torch.Tensor,
                     tau: float) -> torch.Tensor:
    """MOON's ``l_con``, averaged over the batch (rows are samples)."""
    pos = F.cosine_similarity(z, z_glob, dim=1) / tau
    neg = F.cosine_similarity(z, z_prev, dim=1) / tau
    return -(pos - torch.logsumexp(torch.stack([pos, neg], dim=1), dim=1)).mean()


def _head(model: nn.Module) -> nn.Module:
    name = head_keys(model)[0].rpartition(".")[0]
    return model.get_submodule(name) if name else model


def representation(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output for ``x`` and its representation (the head's input, flat)."""
    seen: list[torch.Tensor] = []
    handle = _head(model).register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, seen[-1].flatten(1)


@dataclass(frozen=True)
class MOON(FedAvg):
    """FedAvg with MOON's model-contrastive term in the local loss.

    Parameters
    ----------
    mu : float
        Weight of the contrastive term, >= 0 (the paper: 1 or 5 by dataset); 0 is FedAvg.
    tau : float
        Temperature of the similarities, > 0 (paper: 0.5).
    """

    name: ClassVar[str] = "moon"
    mu: float = 1.0
    tau: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.mu >= 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")

    def client_update(self, ctx: ClientContext) -> Update:
        global_net = copy.deepcopy(ctx.model).eval()
        previous = copy.deepcopy(ctx.model).eval()
        if own_model(ctx.site_state):
            previous.load_state_dict(own_model(ctx.site_state))
        metrics = ctx.train(anchors=(global_net, previous))
        state = ctx.model_state()
        ctx.site_state[OWN] = state
        return ctx.update(state, metrics)

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator,
                   anchors: tuple[nn.Module, nn.Module] | None = None, **hooks
                   ) -> dict[str, float]:
        if anchors is None or self.mu == 0:
            return train_epochs(model, x, y, config, generator, **hooks)
        global_net, previous = anchors

        def moon_loss(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            out, z = representation(net, xb)
            with torch.no_grad():
                z_glob, z_prev = representation(global_net, xb)[1], representation(previous, xb)[1]
            return (task_loss(out, yb, config.ssim_weight)
                    + self.mu * contrastive_loss(z, z_glob, z_prev, self.tau))

        return train_epochs(model, x, y, config, generator, loss=moon_loss, **hooks)
