"""FedAvg: federated averaging.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017. Each selected site runs a few epochs of local SGD from the global
weights; the server replaces the global weights by the average of the sites' weights,
each weighted by its number of training examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .aggregate import weighted_average
from .base import State, Strategy, Update

__all__ = ["FedAvg"]


@dataclass(frozen=True)
class FedAvg(Strategy):
    """Federated averaging weighted by example counts (no hyper-parameters)."""

    name: ClassVar[str] = "fedavg"
    peer_to_peer: ClassVar[bool] = True

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        states = [u.payload for u in updates]
        return weighted_average(states, [u.n_examples for u in updates]), server_state
