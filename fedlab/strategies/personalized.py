"""Personalised FL: each site evaluates a model of its own, built with the federation.

- :class:`FineTuned` ("FedAvg + local fine-tuning"): train FedAvg; each site uses the
  global model it received, fine-tuned on its own training data. The fine-tuning is the
  site's local training of the round (``local_epochs`` / ``local_steps``): the model a
  site sends up is the one it keeps (Wang et al., "Federated Evaluation of On-device
  Personalization", arXiv:1910.10252, 2019; the "FedAvg+FT" baseline of Ditto).
- :class:`Ditto`: Li, Hu, Beirami and Smith, "Ditto: Fair and Robust Federated Learning
  Through Personalization", ICML 2021. The global model is trained and averaged as in
  FedAvg; besides, each site trains a personal model ``v`` on its own loss plus
  ``(lam / 2) * ||v - w_global||^2`` (the FedProx term), and is evaluated with ``v``.
  ``lam = 0`` gives local training, large ``lam`` the global model.

Personal models live in each site's state (``model.``-prefixed keys), so checkpoints
keep them; until a site has one it is evaluated with the global model. The "global"
row of the History scores each site's test samples with that site's own model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import ClientContext, State, Update
from .baselines import OWN, own_model
from .fedavg import FedAvg
from .fedprox import anchor, proximal_term

__all__ = ["FineTuned", "Ditto"]


def _keep(site_state: State, model_state: State) -> None:
    site_state[OWN] = model_state


@dataclass(frozen=True)
class FineTuned(FedAvg):
    """FedAvg; each site is evaluated with the global model fine-tuned on its own data.

    Fine-tuning reuses the round's local training, so it costs nothing extra; its length
    is ``local_epochs`` (or ``local_steps``). The personal model lags the global one by
    a round: it was fine-tuned from the global model the site received.
    """

    name: ClassVar[str] = "finetune"

    def client_update(self, ctx: ClientContext) -> Update:
        update = super().client_update(ctx)
        _keep(ctx.site_state, {k: v.clone() for k, v in update.payload.items()})
        return update

    def eval_state(self, global_state: State, site_state: State) -> State:
        return own_model(site_state) or global_state


@dataclass(frozen=True)
class Ditto(FedAvg):
    """FedAvg for the global model plus a proximally regularised personal model per site.

    Each round a site trains twice (global then personal), so local compute doubles.

    Parameters
    ----------
    lam : float
        Pull of the personal model towards the global one, >= 0 (the paper tunes it in
        {0.01, 0.1, 1, 2}; 0.1 here).
    """

    name: ClassVar[str] = "ditto"
    lam: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lam >= 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")

    def client_update(self, ctx: ClientContext) -> Update:
        reference = anchor(ctx.model)  # the global weights received this round
        update = super().client_update(ctx)

        def prox(model: nn.Module) -> torch.Tensor:
            return 0.5 * self.lam * proximal_term(model, reference)

        ctx.model.load_state_dict(own_model(ctx.site_state) or ctx.received)
        metrics = ctx.train(extra_loss=prox)
        _keep(ctx.site_state, ctx.model_state())
        update.metrics["personal_train_loss"] = metrics["train_loss"]
        return update

    def eval_state(self, global_state: State, site_state: State) -> State:
        return own_model(site_state) or global_state
