"""FedBN: every site keeps its own normalisation layers; the rest is averaged.

Li, Jiang, Zhang, Kamp and Dou, "FedBN: Federated Learning on Non-IID Features via
Local Batch Normalization", ICLR 2021. When sites differ in how their images look
(scanner, protocol, staining: feature shift), one set of BatchNorm statistics cannot
fit them all. FedBN trains as FedAvg but never shares the normalisation layers: their
weights, biases and running statistics stay at the site, are neither sent down nor up
(the ledger shows the smaller messages), and each site is evaluated with the shared
layers plus its own normalisation layers.

Which keys are local? A state dict alone cannot tell: in ``"cnn-bn"`` the BatchNorm
layers are ``features.1`` and ``features.5`` (``nn.Sequential`` indices), so name
patterns such as "bn" or "norm" miss them. The rule is by module type:
:func:`norm_keys` walks the model and returns the state keys of every BatchNorm,
InstanceNorm, GroupNorm and LayerNorm module; :meth:`FedBN.bind` (called by ``run``
with the model) uses it unless ``local_keys`` names the keys explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from .base import ClientContext, State, Update
from .fedavg import FedAvg

__all__ = ["FedBN", "norm_keys", "NORM_LAYERS"]

#: module types whose parameters and buffers stay local (``_NormBase`` is the common
#: base of BatchNorm1d/2d/3d, SyncBatchNorm and InstanceNorm1d/2d/3d)
NORM_LAYERS: tuple[type[nn.Module], ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm)


def norm_keys(model: nn.Module) -> tuple[str, ...]:
    """State-dict keys (parameters and buffers) of the model's normalisation layers."""
    keys: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            keys += [f"{name}.{k}" if name else k for k in module.state_dict()]
    return tuple(keys)


@dataclass(frozen=True)
class FedBN(FedAvg):
    """FedAvg that keeps normalisation layers at the sites.

    Parameters
    ----------
    local_keys : tuple of str
        State keys that never leave a site. Empty (default): :func:`norm_keys` of the
        model, found by :meth:`bind`. A model without normalisation layers is an error
        (FedBN would silently be FedAvg): use ``model="cnn-bn"`` or name the keys.

    Notes
    -----
    The global state keeps the normalisation layers of the initial model (the server
    never sees the sites' ones), so ``History.final_state`` alone is not a usable model:
    each site pairs it with its own layers (:meth:`eval_state`).
    """

    name: ClassVar[str] = "fedbn"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    local_keys: tuple[str, ...] = ()

    def bind(self, model: nn.Module, examples: dict[str, int]) -> FedBN:
        keys = tuple(self.local_keys) or norm_keys(model)
        if not keys:
            raise ValueError(f"FedBN keeps normalisation layers local, but the model "
                             f"({type(model).__name__}) has none: use a model with "
                             f"BatchNorm such as model='cnn-bn', or pass local_keys")
        unknown = sorted(set(keys) - set(model.state_dict()))
        if unknown:
            raise ValueError(f"local_keys must be keys of the model's state, got {unknown}")
        return replace(self, local_keys=keys)

    def _shared(self, state: State) -> State:
        return {k: v for k, v in state.items() if k not in self.local_keys}

    # -- server half: only the shared layers travel --------------------------------
    def message_down(self, global_state: State, server_state: State) -> State:
        return self._shared(global_state)

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        shared, server_state = super().aggregate(global_state, updates, server_state)
        return {**global_state, **shared}, server_state

    # -- client half: the site's own normalisation layers -------------------------
    def init_site_state(self, global_state: State) -> State:
        return {k: global_state[k].clone() for k in self.local_keys}

    def local_start(self, received: State, site_state: State) -> State:
        return {**received, **site_state}

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = ctx.train()
        state = ctx.model_state()
        ctx.site_state.update({k: state.pop(k) for k in self.local_keys})
        return ctx.update(state, metrics)

    def eval_state(self, global_state: State, site_state: State) -> State:
        return {**global_state, **site_state}
