"""Topologies: who talks to whom each round.

- :class:`Star`: a central server (the default of :func:`fedlab.run`).
- :class:`Cyclic`: cyclic weight transfer, the model travels from site to site.
- :class:`Gossip`: peer-to-peer averaging with the neighbours on a graph.
- :class:`Swarm`: swarm learning, a leader among the sites merges each round.
- :class:`Asynchronous`: a server that acts on arrivals on the simulated clock (chosen
  by :func:`fedlab.run` for FedAsync and FedBuff).

Select one with ``fl.run(..., topology=Gossip(graph="torus"))`` or by name
(``topology="ring"``; see ``TOPOLOGIES``), or ``fedlab run --topology NAME``. Every
message goes into the History's ledger (``peer`` names the other end), so the
communication cost of every topology compares with the star's.
"""

from __future__ import annotations

from ..engine.context import RoundContext
from ..strategies.base import Strategy
from ..strategies.wrapper import Wrapper, wraps
from . import graphs
from .asynchronous import Asynchronous
from .base import Decentralised, Topology, average, consensus_distance, mix, site_distances
from .cyclic import Cyclic
from .gossip import Gossip
from .star import Star
from .swarm import Swarm

__all__ = ["TOPOLOGIES", "Asynchronous", "Cyclic", "Decentralised", "Gossip", "RoundContext",
           "Star", "Swarm", "Topology", "average", "consensus_distance", "for_strategy", "get",
           "graphs", "mix", "plots", "site_distances"]

#: names accepted by :func:`get` (and ``fedlab run --topology``)
TOPOLOGIES: dict[str, Topology] = {
    "star": Star(),
    "cyclic": Cyclic(),
    "cyclic-shuffled": Cyclic(order="shuffled"),
    "gossip": Gossip(),
    "ring": Gossip(graph="ring"),
    "torus": Gossip(graph="torus"),
    "complete": Gossip(graph="complete"),
    "random": Gossip(graph="random"),
    "swarm": Swarm(),
    "swarm-random": Swarm(leader="random"),
}

_ALIASES = {"server": "star", "central": "star", "p2p": "gossip", "peer-to-peer": "gossip",
            "cwt": "cyclic", "full": "complete", "fully-connected": "complete"}


def get(topology: str | Topology | None) -> Topology:
    """A topology from its name (see ``TOPOLOGIES``) or as given; ``None`` is the star."""
    if topology is None:
        return Star()
    if isinstance(topology, Topology):
        return topology
    key = str(topology).lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in TOPOLOGIES:
        raise ValueError(f"topology must be one of {sorted(TOPOLOGIES)} or a Topology, "
                         f"got {topology!r}")
    return TOPOLOGIES[key]


def for_strategy(strategy: Strategy, topology: str | Topology | None) -> Topology:
    """The topology a run of ``strategy`` uses: :func:`get` of ``topology``, except that an
    asynchronous strategy (FedAsync, FedBuff) runs on :class:`Asynchronous` (and refuses
    any other topology), and no wrapper (DP, SecAgg, Byzantine) may hold one, nor IFCA or FedMD.

    Parameters
    ----------
    strategy : Strategy
        The run's strategy.
    topology : str, Topology or None
        What the caller asked for.
    """
    topo = get(topology)
    if isinstance(strategy, Wrapper) and any(wraps(strategy, n) for n in ("fedasync", "fedbuff")):
        raise ValueError(f"{strategy.name} cannot wrap an asynchronous strategy: it works on "
                         "a synchronous round's updates; run fedasync or fedbuff unwrapped")
    if isinstance(strategy, Wrapper) and any(wraps(strategy, n) for n in ("ifca", "fedmd")):
        raise ValueError(f"{strategy.name} cannot wrap ifca or fedmd: it treats every update "
                         "as one model to merge, while IFCA's belong to different clusters "
                         "and FedMD's are logits; run them unwrapped")
    if not strategy.asynchronous:
        return topo
    if topology not in (None, "star", "async") and not isinstance(topo, Asynchronous):
        raise ValueError(f"{strategy.name} is asynchronous: it runs on its own schedule (a "
                         f"server acting on arrivals), not on topology={topology!r}; leave "
                         "topology at its default")
    return Asynchronous()


def __getattr__(name: str):
    # the plotly figures import on first use, so `import fedlab` stays fast
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'fedlab.topologies' has no attribute {name!r}")
