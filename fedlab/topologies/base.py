"""What every topology shares: the interface, the star, and two pure functions.

A topology decides who talks to whom in a round. The star (a server) is the round loop
of :func:`fedlab.run` itself. The decentralised topologies (cyclic, gossip, swarm) keep
one model per site, the state that site *shares*; each round they call
:meth:`RoundContext.train` to run the strategy's client half at a site and
:meth:`RoundContext.send` to move a model between two sites (one ledger row each), and
return the state every site shares afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..strategies.aggregate import weighted_average
from ..strategies.base import State, Update

__all__ = ["Topology", "Star", "RoundContext", "mix", "consensus_distance", "site_distances",
           "average"]


@dataclass
class RoundContext:
    """What a topology can use during one round.

    ``train(i, start, visit)`` runs the strategy's client half at site ``i`` from the
    model ``start`` (``visit`` numbers repeated visits within a round, which get their
    own batch order) and returns the site's :class:`~fedlab.strategies.Update`.
    ``send(src, dst, state)`` records that site ``src`` sent ``state`` to ``dst`` (a row
    ``site=src, direction="up", peer=dst``); ``receive(dst, src, state)`` records the
    same message from the receiver's side (``site=dst, direction="down", peer=src``),
    as the star does for the server's broadcast. ``merge(updates, current)`` combines
    updates with the strategy's server half (``aggregate``); ``memory`` persists across
    rounds; ``report`` adds numbers to this round's row of ``History.rounds``.
    """

    round: int
    names: list[str]
    n_examples: list[int]
    seed: int
    train: Callable[..., Update]
    send: Callable[[int, int, State], None]
    receive: Callable[[int, int, State], None]
    merge: Callable[[list[Update], State], State]
    memory: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Topology:
    """Base class of topologies; subclasses set ``name`` and override :meth:`round`."""

    name: ClassVar[str] = "topology"

    def check(self, n_sites: int) -> None:
        """Raise a ValueError if this topology cannot connect ``n_sites`` sites."""

    def round(self, ctx: RoundContext, shared: list[State]) -> list[State]:
        """One round: train and communicate; return the state each site shares after it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Star(Topology):
    """A central server (the default): every round it sends the global model to the
    sites and aggregates what they send back. This is :func:`fedlab.run`'s own loop;
    every message is logged with ``peer="server"``."""

    name: ClassVar[str] = "star"


def _floats(state: State) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def mix(states: Sequence[State], w: np.ndarray) -> list[State]:
    """One gossip step: site ``i`` gets ``sum_j w[i, j] * states[j]``.

    ``w`` must be a nonnegative ``(n, n)`` matrix whose rows sum to one.
    """
    w = np.asarray(w, dtype=float)
    if w.shape != (len(states), len(states)):
        raise ValueError(f"w must be ({len(states)}, {len(states)}), got {w.shape}")
    if (w < 0).any() or not np.allclose(w.sum(axis=1), 1.0):
        raise ValueError("w must be nonnegative with rows summing to one")
    return [weighted_average(list(states), row.tolist()) for row in w]


def average(states: Sequence[State]) -> State:
    """The plain (unweighted) mean of the sites' states."""
    return weighted_average(list(states), [1.0] * len(states))


def _squared_distances(states: Sequence[State]) -> list[float]:
    if not states:
        raise ValueError("states must not be empty")
    total = torch.zeros(len(states), dtype=torch.float64)
    for key in _floats(states[0]):
        stacked = torch.stack([s[key].detach().to(torch.float64) for s in states])
        diff = (stacked - stacked.mean(dim=0)).reshape(len(states), -1)
        total += (diff ** 2).sum(dim=1)
    return total.tolist()


def consensus_distance(states: Sequence[State]) -> float:
    """How far the sites are from agreeing: the mean over sites of the squared
    Euclidean distance between a site's floating-point weights and their average."""
    dist = _squared_distances(states)
    return sum(dist) / len(dist)


def site_distances(states: Sequence[State] | Mapping[str, State]) -> pd.Series:
    """Each site's own share of the consensus distance: the squared Euclidean distance
    between its floating-point weights and the sites' average (their mean is
    :func:`consensus_distance`). Pass ``History.site_states`` to see which sites ended
    up furthest from the others; a mapping keeps its keys as the index."""
    names = list(states) if isinstance(states, Mapping) else None
    values = list(states.values()) if isinstance(states, Mapping) else list(states)
    return pd.Series(_squared_distances(values), index=names, name="distance to the average")
