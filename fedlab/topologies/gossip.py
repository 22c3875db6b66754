"""Gossip (peer-to-peer) learning: every site averages with its neighbours on a graph.

Lian et al., "Can Decentralized Algorithms Outperform Centralized Algorithms? A Case
Study for Decentralized Parallel Stochastic Gradient Descent", NeurIPS 2017 (D-PSGD);
Roy et al., "BrainTorrent: A Peer-to-Peer Environment for Decentralized Federated
Learning", arXiv 2019 (medical imaging). Each round every site trains locally from the
model it holds, then ``steps`` times sends its model to each neighbour and replaces it
by the mixing-matrix average of its own and its neighbours' models. No site ever sees
all the models: there is no global model, and the sites only approach agreement, at a
speed set by the graph (the spectral gap of the mixing matrix).

Messages per round: ``2 * |E| * steps`` (each edge carries one model each way per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..strategies.aggregate import weighted_average
from .base import Decentralised
from .graphs import GRAPHS, adjacency, edges, mixing_matrix

__all__ = ["Gossip"]


@dataclass(frozen=True)
class Gossip(Decentralised):
    """Neighbour averaging on a graph.

    Parameters
    ----------
    graph : str or adjacency matrix
        ``"ring"``, ``"torus"`` (2-D, wrapped), ``"complete"``, ``"random"`` (connected
        ``degree``-regular, drawn with ``graph_seed``), or a symmetric 0/1 matrix
        (stored as a tuple of tuples).
    steps : int
        Gossip steps per round (each one a full exchange with the neighbours).
    mixing : str
        ``"metropolis"`` (Metropolis–Hastings weights) or ``"max-degree"``.
    degree, graph_seed : int
        For ``graph="random"``.
    """

    name: ClassVar[str] = "gossip"
    graph: str | tuple = "ring"
    steps: int = 1
    mixing: str = "metropolis"
    degree: int = 3
    graph_seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.graph, str):
            object.__setattr__(self, "graph",
                               tuple(tuple(int(v) for v in row) for row in np.asarray(self.graph)))
        elif self.graph not in GRAPHS:
            raise ValueError(f"graph must be one of {GRAPHS} or an adjacency matrix, "
                             f"got {self.graph!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        mixing_matrix(np.zeros((1, 1), dtype=int), self.mixing)  # validates the name

    def adjacency(self, n_sites: int) -> np.ndarray:
        """The graph's adjacency matrix on ``n_sites`` sites."""
        return adjacency(self.graph if isinstance(self.graph, str) else np.array(self.graph),
                         n_sites, self.degree, self.graph_seed)

    def weights(self, n_sites: int) -> np.ndarray:
        """The mixing matrix used at every step."""
        return mixing_matrix(self.adjacency(n_sites), self.mixing)

    def check(self, n_sites: int) -> None:
        try:
            a = self.adjacency(n_sites)
        except ValueError as err:
            if self.graph != "random":
                raise
            ok = [d for d in range(1, n_sites) if n_sites * d % 2 == 0]
            raise ValueError(f"graph='random' with degree={self.degree} cannot be drawn on "
                             f"{n_sites} sites ({err}); pass Gossip(graph='random', degree=d) "
                             f"with d in {ok}, or use graph='ring'") from None
        if n_sites > 1 and not a.any():
            raise ValueError("graph has no edge: no site would ever hear from another; "
                             "give the sites neighbours (or use a name such as 'ring')")

    def round(self, ctx) -> None:
        a = ctx.memory.get("adjacency")
        if a is None:
            a = ctx.memory["adjacency"] = self.adjacency(ctx.n_sites)
            ctx.memory["weights"] = mixing_matrix(a, self.mixing)
        n, chosen, w = ctx.n_sites, ctx.participants(), ctx.memory["weights"]
        if len(chosen) < n:  # sampled: only the sites taking part train and mix, on the
            a = a.copy()     # graph between them; the others keep their model
            out = np.setdiff1d(np.arange(n), chosen)
            a[out, :], a[:, out] = 0, 0
            w = mixing_matrix(a, self.mixing)
        updates = ctx.train(chosen, [ctx.shared[i] for i in chosen])
        good = {u.site for u in ctx.exclude_nonfinite(updates)}
        states = list(ctx.shared)
        for i, u in zip(chosen, updates, strict=True):
            if u.site in good:
                states[i] = u.payload
        for _ in range(self.steps):
            got: dict[tuple[int, int], object] = {}  # (receiver, sender) -> decoded model
            for i, j in edges(a):
                got[j, i] = ctx.send(i, j, states[i])
                got[i, j] = ctx.send(j, i, states[j])
            # site i mixes its own model with what it decoded from each neighbour
            states = [weighted_average([states[i] if j == i else got.get((i, j), states[j])
                                        for j in range(n)], w[i].tolist())
                      for i in range(n)]
        ctx.shared = states
        self.record_consensus(ctx)
