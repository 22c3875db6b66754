"""FedAvgM: federated averaging with server momentum.

Hsu, Qi and Brown, "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification", arXiv:1909.06335, 2019. Sites train as in FedAvg. The
server keeps a momentum buffer ``v`` of the pseudo-gradient ``delta = average - global``
and steps along it::

    v      = beta * v + delta
    global = global + server_lr * v

With ``server_lr=1`` and ``beta=0`` this is FedAvg. It is FedOpt (Reddi et al., 2021)
with server SGD plus momentum, so it reuses :class:`~fedlab.strategies.fedopt.FedOpt`:
only trainable parameters take the step, buffers are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import State
from .fedopt import FedOpt

__all__ = ["FedAvgM"]


@dataclass(frozen=True)
class FedAvgM(FedOpt):
    """FedAvg with server momentum; the buffer lives in the server state.

    Parameters
    ----------
    server_lr : float
        Server learning rate (1 by default). Once the buffer has built up, the step is
        about ``server_lr / (1 - beta)`` times FedAvg's (10 with the defaults): lower
        ``server_lr`` if the global loss oscillates. The paper sweeps both.
    beta : float
        Server momentum in [0, 1) (0.9 by default; 0 with ``server_lr=1`` is FedAvg).
    """

    name: ClassVar[str] = "fedavgm"
    server_lr: float = 1.0
    beta: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")

    def init_server_state(self, global_state: State) -> State:
        return {"momentum": {k: torch.zeros_like(global_state[k])
                             for k in self.params(global_state)}}

    def direction(self, key: str, delta: torch.Tensor, moments) -> torch.Tensor:
        v = self.beta * moments["momentum"][key] + delta
        moments["momentum"][key] = v
        return v
