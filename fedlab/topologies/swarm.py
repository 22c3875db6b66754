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

from ..strategies.base import Update
from ..training import derive_seed
from .base import Decentralised

__all__ = ["Swarm", "LEADERS"]

LEADERS = ("rotate", "random")


@dataclass(frozen=True)
class Swarm(Decentralised):
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

    def round(self, ctx) -> None:
        n, chosen = ctx.n_sites, ctx.participants()  # all sites, or the sampled ones
        lead = chosen[self.choose_leader(len(chosen), ctx.seed, ctx.round)]
        trained = dict(zip(chosen, ctx.train(chosen, [ctx.shared[i] for i in chosen]),
                           strict=True))
        peers = [i for i in chosen if i != lead]
        arrived = dict(trained)  # what the leader holds: its own update, its peers' decoded
        for i in peers:
            u = trained[i]
            arrived[i] = Update(u.site, ctx.send(i, lead, u.payload), u.n_examples, u.metrics)
        merged = ctx.merge(ctx.exclude_nonfinite([arrived[i] for i in chosen]),
                           ctx.shared[lead])
        shared = [merged] * n if len(chosen) == n else list(ctx.shared)
        shared[lead] = merged
        for i in peers:
            shared[i] = ctx.receive(i, lead, merged)
        ctx.report["leader"] = ctx.names[lead]
        ctx.shared = shared
        self.record_consensus(ctx)
