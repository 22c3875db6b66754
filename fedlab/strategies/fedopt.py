"""FedOpt: a server optimiser on the sites' average change (FedAdagrad, FedAdam, FedYogi).

Reddi et al., "Adaptive Federated Optimization", ICLR 2021 (Algorithm 2). Sites train
exactly as in FedAvg. The server reads the weighted average of their changes,
``delta = average - global``, as a (negative) gradient and takes one step of a server
optimiser with it: plain SGD (:class:`FedOpt`; with ``server_lr=1`` this is FedAvg),
Adagrad, Adam or Yogi. The optimiser's moments live in the server state.

Only the trainable parameters take the server step. Buffers (BatchNorm running
statistics and counters) take the plain average, as in FedAvg: an adaptive step could
push a running variance below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from ..state import Tree
from .base import State, Update
from .fedavg import FedAvg

__all__ = ["FedOpt", "FedAdagrad", "FedAdam", "FedYogi", "trainable_keys"]


def trainable_keys(model: nn.Module) -> tuple[str, ...]:
    """State-dict keys of the model's trainable parameters (buffers excluded)."""
    return tuple(n for n, p in model.named_parameters() if p.requires_grad)


@dataclass(frozen=True)
class FedOpt(FedAvg):
    """Server SGD on the pseudo-gradient: ``global += server_lr * delta``.

    Parameters
    ----------
    server_lr : float
        Server learning rate; 1 gives FedAvg.
    param_keys : tuple of str, keyword only
        The keys that take the server step. Empty (default): the model's trainable
        parameters, found by :meth:`bind` (``run`` calls it); without it, every
        floating-point tensor.
    """

    name: ClassVar[str] = "fedopt"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    server_lr: float = 1.0
    param_keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.server_lr > 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> FedOpt:
        return self if self.param_keys else replace(self, param_keys=trainable_keys(model))

    def params(self, state: State) -> list[str]:
        """The keys of ``state`` that take the server step."""
        return list(self.param_keys) or [k for k, v in state.items() if v.is_floating_point()]

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        average, _ = super().aggregate(global_state, updates, server_state)
        new_global = dict(average)
        new_server = {group: dict(moments) for group, moments in server_state.items()}
        for key in self.params(global_state):
            delta = average[key] - global_state[key]
            step = self.direction(key, delta, new_server)
            new_global[key] = global_state[key] + self.server_lr * step
        return new_global, new_server

    def direction(self, key: str, delta: torch.Tensor, moments: Tree) -> torch.Tensor:
        """The step direction for one tensor; may replace its entries in ``moments``
        (the server state: one dict of tensors per kind of moment)."""
        return delta


@dataclass(frozen=True)
class FedAdagrad(FedOpt):
    """Adagrad on the server: ``v += delta**2``, step ``m / (sqrt(v) + tau)``.

    Parameters
    ----------
    server_lr : float
        Server learning rate (the paper tunes it per task; 1e-2 here).
    beta1 : float
        Decay of the first moment ``m`` (paper: 0.9).
    tau : float
        Adaptivity: added to ``sqrt(v)``, and ``v`` starts at ``tau**2`` (the paper tunes
        it with the learning rates; 1e-3 here).
    """

    name: ClassVar[str] = "fedadagrad"
    server_lr: float = 1e-2
    beta1: float = 0.9
    tau: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {self.beta1}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")

    def init_server_state(self, global_state: State) -> Tree:
        keys = self.params(global_state)
        return {"m": {k: torch.zeros_like(global_state[k]) for k in keys},
                "v": {k: torch.full_like(global_state[k], self.tau ** 2) for k in keys}}

    def direction(self, key: str, delta: torch.Tensor, moments: Tree) -> torch.Tensor:
        m = self.beta1 * moments["m"][key] + (1 - self.beta1) * delta
        v = self.second_moment(moments["v"][key], delta * delta)
        moments["m"][key], moments["v"][key] = m, v
        return m / (v.sqrt() + self.tau)

    def second_moment(self, v: torch.Tensor, delta_sq: torch.Tensor) -> torch.Tensor:
        """The new second moment from the old one and ``delta**2``."""
        return v + delta_sq


@dataclass(frozen=True)
class FedAdam(FedAdagrad):
    """Adam on the server: ``v = beta2 * v + (1 - beta2) * delta**2`` (no bias correction).

    ``beta2`` is the decay of the second moment (paper: 0.99).
    """

    name: ClassVar[str] = "fedadam"
    beta2: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta2 < 1:
            raise ValueError(f"beta2 must be in [0, 1), got {self.beta2}")

    def second_moment(self, v: torch.Tensor, delta_sq: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * delta_sq


@dataclass(frozen=True)
class FedYogi(FedAdam):
    """Yogi on the server: ``v -= (1 - beta2) * delta**2 * sign(v - delta**2)``.

    ``v`` grows or shrinks additively, so it reacts more slowly than Adam's.
    """

    name: ClassVar[str] = "fedyogi"

    def second_moment(self, v: torch.Tensor, delta_sq: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * delta_sq * torch.sign(v - delta_sq)
