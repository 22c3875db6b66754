"""What every topology shares: the interface, and pure functions on the sites' models.

A topology decides who talks to whom in a round. The one run loop of :func:`fedlab.run`
builds a :class:`~fedlab.engine.RoundContext` per round and calls
``topology.round(ctx)``; the topology trains sites (``ctx.train``), moves messages
(``ctx.send``, ``ctx.receive``: through the codecs, into the ledger) and leaves its
result on the context: ``ctx.global_state`` for the star's server, ``ctx.shared`` (the
model each site holds) for the decentralised topologies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import torch

from ..strategies.aggregate import weighted_average
from ..strategies.base import State, Strategy

if TYPE_CHECKING:
    from ..engine.context import RoundContext
    from ..sites import Site

__all__ = ["Topology", "Decentralised", "mix", "consensus_distance", "site_distances",
           "average"]


@dataclass(frozen=True)
class Topology:
    """Base class of topologies; subclasses set ``name`` and implement :meth:`round`.

    ``decentralised``: no server; every site holds a model of its own (``ctx.shared``),
    which is also scored on the pooled test set of all sites. ``keeps_time``: the
    topology reports its rounds' simulated seconds itself (the asynchronous schedule).
    """

    name: ClassVar[str] = "topology"
    decentralised: ClassVar[bool] = False
    keeps_time: ClassVar[bool] = False

    def check(self, n_sites: int) -> None:
        """Raise a ValueError if this topology cannot connect ``n_sites`` sites."""

    def check_strategy(self, strategy: Strategy) -> None:
        """Raise a ValueError if ``strategy`` cannot run on this topology."""

    def start(self, ctx: RoundContext, initial: State) -> None:
        """Set up the round state from the common initial model (before round 1)."""
        raise NotImplementedError

    def round(self, ctx: RoundContext) -> None:
        """One round: train and communicate, leaving the new state on ``ctx``."""
        raise NotImplementedError

    def eval_states(self, ctx: RoundContext, sites: Sequence[Site]) -> list[State]:
        """The state each of ``sites`` is scored with."""
        raise NotImplementedError

    def final_state(self, ctx: RoundContext) -> State:
        """The run's model after the last round (``History.final_state``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Decentralised(Topology):
    """Base of the topologies without a server: each site holds the model it shares,
    merged by a weighted mean (FedAvg's server half, run by a site)."""

    decentralised: ClassVar[bool] = True

    def check_strategy(self, strategy: Strategy) -> None:
        if strategy.rule is not None:
            raise ValueError(f"combine={strategy.rule} needs a server that sees every update; "
                             f"with topology {self.name!r} a site averages what it receives: "
                             "use topology='star', or drop combine")
        if not strategy.peer_to_peer:
            raise ValueError(f"strategy {strategy.name!r} cannot run without a server; with "
                             f"topology {self.name!r} use fedavg, fedprox, finetune or ditto "
                             "(or one of them with Byzantine sites)")

    def start(self, ctx: RoundContext, initial: State) -> None:
        ctx.shared = [initial] * ctx.n_sites

    def eval_states(self, ctx: RoundContext, sites: Sequence[Site]) -> list[State]:
        return [ctx.strategy.eval_state(sh, st)
                for sh, st in zip(ctx.shared, ctx.site_states, strict=True)]

    def final_state(self, ctx: RoundContext) -> State:
        return average(ctx.shared)

    def record_consensus(self, ctx: RoundContext) -> None:
        """Add the consensus distance of the sites' models to the round's row."""
        ctx.report["consensus_distance"] = consensus_distance(ctx.shared)


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
    Euclidean distance between a site's floating-point weights and their average.

    Parameters
    ----------
    states : sequence of dict of tensors
        The sites' model states (at least one), e.g. ``ctx.shared``.
    """
    dist = _squared_distances(states)
    return sum(dist) / len(dist)


def site_distances(states: Sequence[State] | Mapping[str, State]) -> pd.Series:
    """Each site's own share of the consensus distance: the squared Euclidean distance
    between its floating-point weights and the sites' average (their mean is
    :func:`consensus_distance`). Pass ``History.site_states`` to see which sites ended
    up furthest from the others; a mapping keeps its keys as the index.

    Parameters
    ----------
    states : sequence or mapping of dict of tensors
        The sites' model states (at least one), in a list or by site name.
    """
    names = list(states) if isinstance(states, Mapping) else None
    values = list(states.values()) if isinstance(states, Mapping) else list(states)
    return pd.Series(_squared_distances(values), index=names, name="distance to the average")
