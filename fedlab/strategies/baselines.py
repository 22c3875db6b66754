"""The two reference points every FL result is read against.

- :class:`Centralized`: all data pooled in one place (an upper bound FL tries to reach).
- :class:`LocalOnly`: each site trains alone on its own data and never communicates
  (what a hospital gets without a federation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import ClientContext, State, Strategy, Update
from .fedavg import FedAvg

__all__ = ["Centralized", "LocalOnly"]

#: the key under which a site keeps its own model in its state
OWN = "model"


@dataclass(frozen=True)
class Centralized(FedAvg):
    """Train one model on the union of all sites' training data.

    One round is ``local_epochs`` passes over the pooled data. Evaluation still reports
    every site's test split, so per-site results compare with the federated runs.
    """

    name: ClassVar[str] = "centralized"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    communicates: ClassVar[bool] = False
    pooled: ClassVar[bool] = True


@dataclass(frozen=True)
class LocalOnly(Strategy):
    """Each site trains its own model from the common initial weights; nothing is sent.

    Each site is evaluated with its own model; the global row of the History scores
    the union of the site test sets, each sample by its own site's model.
    """

    name: ClassVar[str] = "local"
    communicates: ClassVar[bool] = False

    def local_start(self, received: State, site_state: State) -> State:
        return own_model(site_state) or received

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = ctx.train()
        ctx.site_state[OWN] = ctx.model_state()
        return ctx.update({}, metrics)

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        return global_state, server_state

    def eval_state(self, global_state: State, site_state: State) -> State:
        return own_model(site_state) or global_state


def own_model(site_state: State) -> State:
    """The model a site keeps in its own state (empty if none)."""
    return site_state.get(OWN, {})
