"""FedMD: model-agnostic FL by distillation, hospitals with different networks.

Li and Wang, "FedMD: Heterogenous Federated Learning via Model Distillation",
NeurIPS 2019 Workshop on Federated Learning. Weights can only be averaged between
identical networks. FedMD exchanges *predictions* instead: all parties hold the same
public set (a public dataset, or images every hospital may share); each round every
site sends its class scores (logits) on a subset of it, the server averages them into
a consensus, and each site then

1. *digests*: trains its own network to reproduce the consensus on that subset (mean
   absolute error on the logits, as the paper does), and
2. *revisits*: trains on its own private data (the round's local epochs).

Before its first round a site trains on the labelled public set (the paper's transfer
learning, ``transfer_epochs``). Messages are ``subset x classes`` numbers, whatever the
networks: the ledger counts the logits sent. With different architectures per site
(``model="zoo"`` or a :class:`~fedlab.model_zoo.ModelZoo`, ``architectures=``), each
site's state holds its network, and each site is scored with it; with one architecture
for all, FedMD still shares nothing but predictions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model_zoo import ModelZoo, select
from ..training import TrainConfig, derive_seed, train_epochs
from .base import ClientContext, State, Strategy, Update
from .baselines import OWN, own_model

__all__ = ["FedMD", "PublicSet"]


class PublicSet:
    """Images every party holds (and their labels, if any): FedMD's common ground.

    Parameters
    ----------
    images : array of shape (N, C, H, W)
        The public images (float, as the sites' images).
    labels : array of shape (N,), optional
        Their classes, for the transfer-learning epochs; None: unlabelled.
    """

    def __init__(self, images, labels=None) -> None:
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.images.ndim != 4 or not len(self.images):
            raise ValueError(f"public images must have shape (N, C, H, W) with N >= 1, got "
                             f"{self.images.shape}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(f"public labels must have shape ({len(self.images)},), got "
                             f"{self.labels.shape}")

    @classmethod
    def of(cls, public) -> PublicSet:
        """A public set from a Split (images and labels), an image array or itself."""
        if isinstance(public, PublicSet):
            return public
        if hasattr(public, "images") and hasattr(public, "labels"):
            return cls(public.images, public.labels)
        return cls(public)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:  # what a run's config records
        crc = zlib.crc32(self.images.tobytes())
        return (f"PublicSet(n={len(self)}, labelled={self.labels is not None}, "
                f"crc32={crc:08x})")


@dataclass(frozen=True)
class FedMD(Strategy):
    """Sites exchange logits on a public set instead of weights.

    Parameters
    ----------
    public : PublicSet, Split or array
        The public set (required).
    architectures : dict of str to str, optional
        With a :class:`~fedlab.model_zoo.ModelZoo` model: each site's member network by
        site name; None gives the members to the sites in turn.
    per_round : int, optional
        Public images scored per round (a seeded subset; the paper samples one each
        round); None: all of them.
    digest_epochs, transfer_epochs : int
        Epochs of the digest step per round (>= 1) and of the first round's training on
        the labelled public set (>= 0; 0 skips it).
    members, zoo : keyword only
        Each site's member network and the zoo's member names, set by :meth:`bind`
        (``run`` calls it) when the model is a :class:`~fedlab.model_zoo.ModelZoo`.
    """

    name: ClassVar[str] = "fedmd"
    payload: ClassVar[str] = "logits"
    public: PublicSet | None = None
    architectures: dict[str, str] | None = None
    per_round: int | None = None
    digest_epochs: int = 1
    transfer_epochs: int = 1
    members: dict = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    zoo: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.combine is not None:
            raise ValueError("FedMD averages logits, not weights: combine does not apply")
        if self.public is None:
            return  # bind says what is missing
        object.__setattr__(self, "public", PublicSet.of(self.public))
        if self.per_round is not None and not 1 <= self.per_round <= len(self.public):
            raise ValueError(f"per_round must be in [1, {len(self.public)}] or None, got "
                             f"{self.per_round}")
        if self.digest_epochs < 1 or self.transfer_epochs < 0:
            raise ValueError(f"digest_epochs must be >= 1 and transfer_epochs >= 0, got "
                             f"{self.digest_epochs} and {self.transfer_epochs}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> FedMD:
        if self.public is None:
            raise ValueError("FedMD needs a public set every site holds: public= a Split, "
                             "an image array or a fedlab.strategies.PublicSet (the CLI "
                             "uses up to 500 images of the dataset's validation split)")
        if not isinstance(model, ModelZoo):
            return self
        chosen = dict(self.architectures or {})
        unknown = sorted(set(chosen) - set(examples))
        bad = sorted(set(chosen.values()) - set(model.names))
        if unknown or bad:
            raise ValueError(f"architectures must map site names {sorted(examples)} to "
                             f"members {list(model.names)}; unknown sites {unknown}, "
                             f"members {bad}")
        members = {site: chosen.get(site, model.names[i % len(model.names)])
                   for i, site in enumerate(examples)}
        return replace(self, members=members, zoo=model.names)

    def subset(self, rnd: int) -> torch.Tensor:
        """Indices of the public images scored in round ``rnd``."""
        n = len(self.public)
        if self.per_round is None:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(derive_seed(rnd, 7))
        return torch.randperm(n, generator=gen)[: self.per_round].sort().values

    # -- server half: the consensus ------------------------------------------------
    def message_down(self, global_state: State, server_state: State) -> State:
        return {k: v for k, v in server_state.items() if k == "consensus"}

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        logits = torch.stack([u.payload["logits"].to(torch.float32) for u in updates])
        return global_state, {"consensus": logits.mean(dim=0)}  # the paper's plain mean

    # -- client half ---------------------------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        return {OWN: {k: v.clone() for k, v in global_state.items()}}

    def local_start(self, received: State, site_state: State) -> State:
        return own_model(site_state)

    def client_update(self, ctx: ClientContext) -> Update:
        if self.members and not ctx.site_state.get("started"):
            ctx.model.load_state_dict(select(ctx.model_state(), self.zoo,
                                             self.members[ctx.site]))
        metrics: dict[str, float] = {}
        if not ctx.site_state.get("started") and self.transfer_epochs and \
                self.public.labels is not None:
            metrics["transfer_loss"] = ctx.train(public="transfer")["train_loss"]
        if "consensus" in ctx.received:
            metrics["digest_loss"] = ctx.train(public=ctx.received["consensus"],
                                               round=ctx.round - 1)["train_loss"]
        metrics.update(ctx.train())  # revisit: the site's own data
        ctx.site_state["started"] = torch.tensor(1)
        ctx.site_state[OWN] = ctx.model_state()
        logits = ctx.train(public="score", round=ctx.round)["logits"]
        return ctx.update({"logits": logits}, metrics)

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator,
                   public=None, round: int = 0, **hooks) -> dict:
        if public is None:
            return train_epochs(model, x, y, config, generator, **hooks)
        images = torch.as_tensor(self.public.images, device=x.device)
        if isinstance(public, str) and public == "transfer":
            labels = torch.as_tensor(self.public.labels, device=x.device)
            cfg = replace(config, epochs=int(self.transfer_epochs), steps=None)
            return train_epochs(model, images, labels, cfg, generator)
        idx = self.subset(round)
        if isinstance(public, str):  # "score": the logits sent to the server
            model.eval()
            with torch.no_grad():
                return {"logits": model(images[idx.to(x.device)]).detach()}
        cfg = replace(config, epochs=int(self.digest_epochs), steps=None)
        return train_epochs(model, images[idx.to(x.device)], public.to(x.device), cfg,
                            generator, loss=lambda net, xb, yb: F.l1_loss(net(xb), yb))

    def eval_state(self, global_state: State, site_state: State) -> State:
        return own_model(site_state) or global_state
