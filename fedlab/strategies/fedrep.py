"""Share the body, but train the head apart from it: FedRep and FedBABU.

- :class:`FedRep`: Collins, Hassani, Mokhtari and Shakkottai, "Exploiting Shared
  Representations for Personalized Federated Learning", ICML 2021. Each round a site
  first fits its own head to the body it received (the body frozen), then trains the
  body with its head frozen, and sends the body only. The head adapts to the site, the
  body learns what all sites share.
- :class:`FedBABU`: Oh, Kim and Yun, "FedBABU: Towards Enhanced Representation for
  Federated Image Classification", ICLR 2022. The head stays frozen at its random
  initial weights throughout federated training (every site has the same one, so it
  never travels); only the body trains and is averaged. Personalisation comes after:
  each site fine-tunes the whole global model on its own data. Here that fine-tuning
  runs every round on the model the site received, and the site is scored with it (it
  lags the global model by one round, as ``finetune`` does).

Both train in phases with some parameters frozen (``requires_grad`` off, so the
optimiser leaves them as they are); :func:`frozen` does it and restores them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from ..training import TrainConfig, train_epochs
from .base import ClientContext, State
from .baselines import OWN, own_model
from .sharing import PartialSharing, SharedSpec

__all__ = ["FedRep", "FedBABU", "frozen"]


@contextmanager
def frozen(model: nn.Module, keys) -> Iterator[None]:
    """Within the block, the parameters of ``model`` named in ``keys`` do not train."""
    params = [p for n, p in model.named_parameters() if n in set(keys) and p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class _Phases:
    """``site_train`` with an ``epochs`` hook: a phase of its own length."""

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator, epochs: int | None = None,
                   **hooks) -> dict[str, float]:
        if epochs is not None:
            config = replace(config, epochs=epochs, steps=None)
        return train_epochs(model, x, y, config, generator, **hooks)


@dataclass(frozen=True)
class FedRep(_Phases, PartialSharing):
    """FedPer's split (share the body), trained head first, then body.

    Parameters
    ----------
    head_epochs : int
        Epochs that fit the site's head to the received body each round, >= 1 (the paper
        uses several, e.g. 10; 1 here keeps CPU lessons fast). The body then trains for
        the round's ``local_epochs`` (or ``local_steps``).
    """

    name: ClassVar[str] = "fedrep"
    shared: SharedSpec = "body"
    head_epochs: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.head_epochs, bool) or not int(self.head_epochs) >= 1:
            raise ValueError(f"head_epochs must be an integer >= 1, got {self.head_epochs!r}")

    def local_training(self, ctx: ClientContext) -> dict[str, float]:
        with frozen(ctx.model, self.shared_keys):
            head = ctx.train(epochs=int(self.head_epochs))
        kept = [k for k in ctx.model.state_dict() if k not in self.shared_keys]
        with frozen(ctx.model, kept):
            body = ctx.train()
        return {**body, "head_train_loss": head["train_loss"],
                "steps": body["steps"] + head["steps"]}


@dataclass(frozen=True)
class FedBABU(_Phases, PartialSharing):
    """Train and share the body with the head frozen; fine-tune the whole model per site.

    Parameters
    ----------
    finetune_epochs : int
        Epochs of each site's fine-tuning of the received model, >= 1 (the paper
        fine-tunes for a few epochs; its score is the fine-tuned model's).
    """

    name: ClassVar[str] = "fedbabu"
    shared: SharedSpec = "body"
    finetune_epochs: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.finetune_epochs, bool) or not int(self.finetune_epochs) >= 1:
            raise ValueError(f"finetune_epochs must be an integer >= 1, got "
                             f"{self.finetune_epochs!r}")

    def local_training(self, ctx: ClientContext) -> dict[str, float]:
        start = ctx.model_state()  # the global body with the common frozen head
        kept = [k for k in start if k not in self.shared_keys]
        with frozen(ctx.model, kept):
            metrics = ctx.train()
        trained = ctx.model_state()
        ctx.model.load_state_dict(start)
        tuned = ctx.train(epochs=int(self.finetune_epochs))
        ctx.site_state[OWN] = ctx.model_state()
        ctx.model.load_state_dict(trained)  # what the base class sends: the trained body
        return {**metrics, "finetune_loss": tuned["train_loss"]}

    def eval_state(self, global_state: State, site_state: State) -> State:
        return own_model(site_state) or super().eval_state(global_state, site_state)
