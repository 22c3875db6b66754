"""FedProx: FedAvg plus a proximal term that keeps local training near the global model.

Li, Sahu, Zaheer, Sanjabi, Talwalkar and Smith, "Federated Optimization in Heterogeneous
Networks", MLSys 2020. Each site minimises its loss plus ``(mu / 2) * ||w - w_global||^2``
over the trainable parameters, which limits how far sites with different data drift
apart during local training. The server averages as FedAvg does; ``mu = 0`` is FedAvg.

Two known pitfalls are avoided here: the global weights are copied with
``detach().clone()`` *before* local training (a live reference would make the term
zero at every step), and the norm is squared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import ClientContext, State, Update
from .fedavg import FedAvg

__all__ = ["FedProx", "Proximal", "anchor", "proximal_term"]


def anchor(model: nn.Module) -> State:
    """A detached copy of the model's trainable parameters (the point the term pulls to)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def proximal_term(model: nn.Module, reference: State) -> torch.Tensor:
    """``||w - w_ref||^2``: squared distance of the trainable parameters to ``reference``.

    Not halved: the loss adds ``mu / 2`` times this. Differentiable in ``model``'s
    parameters; exactly 0 while they equal ``reference``.
    """
    terms = [(p - reference[n]).pow(2).sum() for n, p in model.named_parameters()
             if n in reference]
    return torch.stack(terms).sum() if terms else torch.zeros(())


@dataclass(frozen=True)
class Proximal:
    """The local term ``(mu / 2) * ||w - reference||^2`` as an ``extra_loss`` hook.

    A value rather than a closure, so an executor that trains many sites at once (the
    vectorised one) can read ``mu`` and ``reference`` and apply the same term itself.
    """

    mu: float
    reference: State

    def __call__(self, model: nn.Module) -> torch.Tensor:
        return 0.5 * self.mu * proximal_term(model, self.reference)


@dataclass(frozen=True)
class FedProx(FedAvg):
    """FedAvg whose sites add ``(mu / 2) * ||w - w_global||^2`` to their loss.

    Parameters
    ----------
    mu : float
        Strength of the proximal term, >= 0 (the paper tries 0.001 to 1; 0.01 here).
    """

    name: ClassVar[str] = "fedprox"
    mu: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.mu >= 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")

    def client_update(self, ctx: ClientContext) -> Update:
        # the global weights, copied before any local step
        metrics = ctx.train(extra_loss=Proximal(self.mu, anchor(ctx.model)))
        return ctx.update(ctx.model_state(), metrics)
