"""Partial sharing: a site sends only some layers and keeps the others as its own.

Which layers? :func:`shared_keys` answers for any fedlab model, from one of:

- ``"body"`` — everything but the head (the representation; FedPer, FedRep, FedBABU);
- ``"head"`` — only the head (LG-FedAvg);
- a tuple of key prefixes (``("features.",)``), or a predicate over state keys
  (``lambda key: key.startswith("features.")``).

The *head* is the last module with parameters, in the order the model registers its
modules: ``head.4`` of the small CNN, ``net.3`` of the MLP, ``fc`` of MONAI's ResNet,
the output convolution of a U-Net (:func:`head_keys`). Kept keys never enter a
message, so the ledger proves what partial sharing saves.

- :class:`FedPer`: Arivazhagan, Aggarwal, Singh and Choudhary, "Federated Learning with
  Personalization Layers", arXiv:1912.00818, 2019. The body is averaged, every site
  keeps its own head; both train together.
- :class:`LGFedAvg`: Liang, Liu, Ziyin, Allen, Auerbach, Brent, Salakhutdinov and
  Morency, "Think Locally, Act Globally: Federated Learning with Local and Global
  Representations", arXiv:2001.01523, 2020. The reverse: each site keeps its own body
  (representation) and only the small head is averaged, so messages are tiny.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

from torch import nn

from .base import ClientContext, State, Update
from .fedavg import FedAvg

__all__ = ["PartialSharing", "FedPer", "LGFedAvg", "head_keys", "shared_keys"]

#: the key of a site's kept layers in its state
LOCAL = "local"

SharedSpec = str | tuple[str, ...] | Callable[[str], bool]


def head_keys(model: nn.Module) -> tuple[str, ...]:
    """State keys (parameters and buffers) of the model's head: its last module with
    parameters of its own."""
    last = None
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            last = name
    if last is None:
        raise ValueError(f"the model ({type(model).__name__}) has no parameters")
    prefix = f"{last}." if last else ""
    module = model.get_submodule(last) if last else model
    return tuple(prefix + k for k in module.state_dict())


def shared_keys(model: nn.Module, shared: SharedSpec) -> tuple[str, ...]:
    """The state keys of ``model`` that ``shared`` names (see the module docstring)."""
    keys = list(model.state_dict())
    if shared in ("body", "head"):
        head = set(head_keys(model))
        chosen = [k for k in keys if (k in head) == (shared == "head")]
    elif isinstance(shared, tuple) and all(isinstance(p, str) for p in shared):
        chosen = [k for k in keys if k.startswith(shared)]
    elif callable(shared):
        chosen = [k for k in keys if shared(k)]
    else:
        raise ValueError(f"shared must be 'body', 'head', a tuple of key prefixes or a "
                         f"predicate over state keys, got {shared!r}")
    if not chosen or len(chosen) == len(keys):
        raise ValueError(f"shared={shared!r} selects {len(chosen)} of the model's "
                         f"{len(keys)} state keys: partial sharing needs some shared and "
                         "some kept")
    return tuple(chosen)


@dataclass(frozen=True)
class PartialSharing(FedAvg):
    """FedAvg over the shared layers; every site keeps the others (base of FedPer,
    LG-FedAvg, FedRep, FedBABU).

    Parameters
    ----------
    shared : str, tuple of str or callable
        What travels: ``"body"``, ``"head"``, key prefixes or a predicate over state
        keys (:func:`shared_keys`).
    shared_keys : tuple of str, keyword only
        The resolved keys, set by :meth:`bind` (``run`` calls it).

    Notes
    -----
    ``History.final_state`` holds the averaged layers with the initial kept ones; each
    site is scored with the averaged layers plus its own (:meth:`eval_state`).
    """

    name: ClassVar[str] = "partial"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    shared: SharedSpec = "body"
    shared_keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False)

    def bind(self, model: nn.Module, examples: dict[str, int]) -> PartialSharing:
        return replace(self, shared_keys=shared_keys(model, self.shared))

    def _split(self, state: State) -> tuple[State, State]:
        shared = {k: v for k, v in state.items() if k in self.shared_keys}
        return shared, {k: v for k, v in state.items() if k not in self.shared_keys}

    # -- server half: only the shared layers travel ------------------------------------
    def message_down(self, global_state: State, server_state: State) -> State:
        return self._split(global_state)[0]

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        shared, server_state = super().aggregate(global_state, updates, server_state)
        return {**global_state, **shared}, server_state

    # -- client half: the kept layers ----------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        return {LOCAL: {k: v.clone() for k, v in self._split(global_state)[1].items()}}

    def local_start(self, received: State, site_state: State) -> State:
        return {**received, **site_state[LOCAL]}

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = self.local_training(ctx)
        shared, kept = self._split(ctx.model_state())
        ctx.site_state[LOCAL] = kept
        return ctx.update(shared, metrics)

    def local_training(self, ctx: ClientContext) -> dict[str, float]:
        """The round's local training (all layers together by default)."""
        return ctx.train()

    def eval_state(self, global_state: State, site_state: State) -> State:
        return {**global_state, **site_state.get(LOCAL, {})}


@dataclass(frozen=True)
class FedPer(PartialSharing):
    """Share the body, keep the head (``shared="body"``)."""

    name: ClassVar[str] = "fedper"
    shared: SharedSpec = "body"


@dataclass(frozen=True)
class LGFedAvg(PartialSharing):
    """Share the head, keep the body (``shared="head"``): local representations, a
    global classifier."""

    name: ClassVar[str] = "lgfedavg"
    shared: SharedSpec = "head"
