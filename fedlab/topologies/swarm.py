"""Swarm learning: no fixed server; each round one of the sites leads the merge.

Warnat-Herresthal et al., "Swarm Learning for decentralized and confidential clinical
machine learning", Nature 594, 2021. Every site trains locally; a leader chosen among
them for this round (in turn, or at random; in the paper, elected through a
blockchain) collects its peers' models, merges them with the strategy's server half
(for FedAvg: the average weighted by training examples) and sends the result back.
With every site taking part, one round equals one FedAvg round; what changes is who
holds the merged model and who must be trusted, round by round.

Messages per round: ``n - 1`` up (peers to the leader) and ``n - 1`` down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..training import derive_seed
from .base import RoundContext, State, Topology

__all__ = ["Swarm", "LEADERS"]

LEADERS = ("rotate", "random")


@dataclass(frozen=True)
class Swarm(Topology):
    """Swarm learning with a leader per round.

    Parameters
    ----------
    leader : str
        ``"rotate"`` (site ``(round - 1) mod n``) or ``"random"`` (seeded draw).
    """

    name: ClassVar[str] = "swarm"
    leader: str = "rotate"

    def __post_init__(self) -> None:
        if self.leader not in LEADERS:
            raise ValueError(f"leader must be one of {LEADERS}, got {self.leader!r}")

    def choose_leader(self, n_sites: int, seed: int, rnd: int) -> int:
        """The index of the site that merges in round ``rnd``."""
        if self.leader == "rotate":
            return (rnd - 1) % n_sites
        return int(np.random.default_rng(derive_seed(seed, rnd, 23)).integers(n_sites))

    def round(self, ctx: RoundContext, shared: list[State]) -> list[State]:
        lead = self.choose_leader(ctx.n_sites, ctx.seed, ctx.round)
        updates = [ctx.train(i, shared[i]) for i in range(ctx.n_sites)]
        peers = [i for i in range(ctx.n_sites) if i != lead]
        for i in peers:
            ctx.send(i, lead, updates[i].payload)
        merged = ctx.merge(updates, shared[lead])
        for i in peers:
            ctx.receive(i, lead, merged)
        ctx.report["leader"] = ctx.names[lead]
        return [merged] * ctx.n_sites
