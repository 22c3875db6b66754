"""APFL: adaptive personalised FL, a learned mix of a local and the global model.

Deng, Kamani and Mahdavi, "Adaptive Personalized Federated Learning",
arXiv:2003.13461, 2020. Every site keeps a local model ``v`` and a mixing weight
``alpha`` in [0, 1]; its personalised model is ``alpha * v + (1 - alpha) * w``, with
``w`` the global model. Each round the site trains ``w`` on its loss and sends it (the
FedAvg part), then trains ``v`` and ``alpha`` on the loss *of the mixed model*, ``w``
held fixed. ``alpha`` follows its own gradient (the paper's adaptive variant), so a
site whose data resemble the federation's drifts to ``alpha -> 0`` (the global model)
and an unusual one to a larger ``alpha``: its value per site is in every round's
row of ``History.rounds`` (``alpha/<site>``).

The paper interleaves the ``w`` and ``v`` steps; here ``v`` trains after ``w`` in the
same round, against the ``w`` the site just sent (the same dependence, one phase after
the other, which keeps the client half two calls of the common training loop). A site
is scored with the mix of ``v`` and that same ``w`` (its personalised model as trained,
one round behind the global model, as ``finetune``'s): mixing ``v`` with a newer global
model it never trained against can land between two unrelated minima. Only the
parameters mix; buffers (BatchNorm statistics) are those the mixed model gathered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call

from ..training import TrainConfig, task_loss, train_epochs
from .base import ClientContext, State, Update
from .fedavg import FedAvg

__all__ = ["APFL", "mix"]

_V, _ALPHA, _W = "local", "alpha", "global"


def mix(alpha: float, local: State, global_state: State) -> State:
    """``alpha * local + (1 - alpha) * global`` for the floating-point tensors of
    ``local``; every other entry from ``global_state``."""
    return {k: (alpha * local[k] + (1 - alpha) * g if k in local and g.is_floating_point()
                else g) for k, g in global_state.items()}


@dataclass(frozen=True)
class APFL(FedAvg):
    """FedAvg for the global model; each site mixes it with a local model it learns.

    Parameters
    ----------
    alpha : float
        Every site's initial mixing weight, in [0, 1] (the paper starts from 0.01 to
        0.25; 0.25 here). 0 with ``adapt=False`` scores each site's copy of the
        global model after its local training (fine-tuned FedAvg's personal model).
    adapt : bool
        Learn ``alpha`` per site by gradient descent (the paper's adaptive APFL); False
        keeps it fixed.
    alpha_lr : float
        Step size of ``alpha``'s updates, > 0.
    """

    name: ClassVar[str] = "apfl"
    alpha: float = 0.25
    adapt: bool = True
    alpha_lr: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.alpha_lr > 0:
            raise ValueError(f"alpha_lr must be > 0, got {self.alpha_lr}")

    def server_step(self, global_state: State, updates: list[Update], server_state: State,
                    ) -> tuple[State, State, dict[str, float]]:
        new, state, report = super().server_step(global_state, updates, server_state)
        # each site's alpha, for the round's row of History.rounds (a diagnostic of the
        # simulation: a deployed site need not send it)
        return new, state, {**report, **{f"alpha/{u.site}": u.metrics["alpha"]
                                         for u in updates if "alpha" in u.metrics}}

    def init_site_state(self, global_state: State) -> State:
        return {_V: {k: v.clone() for k, v in global_state.items() if v.is_floating_point()},
                _ALPHA: torch.tensor(float(self.alpha))}

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = ctx.train()  # the global model w, as in FedAvg
        w = ctx.model_state()
        ctx.model.load_state_dict({**w, **ctx.site_state[_V]})
        alpha = ctx.site_state[_ALPHA].clone().to(next(iter(w.values())).device)
        # the w that v trains against; its buffers (BatchNorm statistics) follow the mixed
        # model's forward passes, the sent w stays as trained
        against = {k: t.clone() for k, t in w.items()}
        personal = ctx.train(personal=(against, alpha))
        params = {n for n, _ in ctx.model.named_parameters()}
        ctx.site_state[_V] = {k: v for k, v in ctx.model_state().items() if k in params}
        ctx.site_state[_ALPHA] = alpha.detach().cpu()
        ctx.site_state[_W] = against
        return ctx.update(w, {**metrics, "personal_train_loss": personal["train_loss"],
                              "alpha": float(alpha)})

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator,
                   personal: tuple[State, torch.Tensor] | None = None, **hooks
                   ) -> dict[str, float]:
        if personal is None:
            return train_epochs(model, x, y, config, generator, **hooks)
        fixed, alpha = personal
        alpha.requires_grad_(self.adapt)

        def mixed_loss(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            state = {**fixed, **{k: alpha * p + (1 - alpha) * fixed[k]
                                 for k, p in net.named_parameters()}}
            return task_loss(functional_call(net, state, (xb,)), yb, config.ssim_weight)

        def step_alpha(net: nn.Module) -> None:
            if alpha.grad is not None:
                with torch.no_grad():
                    alpha.sub_(self.alpha_lr * alpha.grad).clamp_(0.0, 1.0)
                alpha.grad = None

        metrics = train_epochs(model, x, y, config, generator, loss=mixed_loss,
                               after_backward=step_alpha)
        alpha.requires_grad_(False)
        return metrics

    def eval_state(self, global_state: State, site_state: State) -> State:
        if _W not in site_state:  # before its first round: the global model
            return global_state
        return mix(float(site_state[_ALPHA]), site_state[_V], site_state[_W])
