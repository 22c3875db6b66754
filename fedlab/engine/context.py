"""What a topology can do in one round: train sites, send messages, merge updates.

The run loop builds one :class:`RoundContext` per round and hands it to
``topology.round(ctx)``. Every topology, the star included, works through it:

- ``ctx.train(indices, starts)`` runs the strategy's client half at those sites, through
  the run's executor (:mod:`fedlab.executors`), and keeps each site's new own state;
- ``ctx.send(src, dst, state)`` moves a message through the run's codecs and logs it in
  the ledger; it returns what the receiver decodes. ``SERVER`` stands for the server;
- ``ctx.exclude_nonfinite(updates)`` drops (and logs) updates with NaN or inf;
- ``ctx.merge(updates, current)`` combines updates with the strategy's server half.

The state the topology changes lives on the context: ``global_state`` and
``server_state`` (the star's server), ``shared`` (the model each site holds, for the
decentralised topologies); ``memory`` persists across rounds (and in checkpoints);
``report`` adds numbers to this round's row of ``History.rounds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..comm.wire import Wire, sample_sites
from ..executors import Executor, SiteTask
from ..history import History
from ..models import ModelSpec
from ..sites import Site
from ..strategies import Strategy, is_finite
from ..strategies.base import State, Update
from ..training import TrainConfig, derive_seed

__all__ = ["RoundContext", "SERVER"]

#: the index that stands for the server in :meth:`RoundContext.send`
SERVER = -1


@dataclass
class RoundContext:
    """One round of a run, as a topology sees it (see the module docstring).

    Parameters
    ----------
    round : int
        The current round (from 1; 0 while the topology starts).
    strategy : Strategy
        The run's strategy, bound to its model and sites.
    sites : sequence of Site
        The sites that train (the pooled site alone for centralised training).
    seed : int
        The run's seed (with the round and site it seeds every site's streams).
    config : TrainConfig
        The local training settings (decayed per round by :meth:`train`).
    spec : ModelSpec
        How the sites build the network.
    device : str
        Where the sites train, e.g. ``"cpu"`` or ``"cuda"``.
    executor : Executor
        Runs the sites' tasks (:mod:`fedlab.executors`).
    wire : Wire
        The run's codecs: what :meth:`send` encodes, decodes and logs.
    history : History
        The run's record; messages and events are logged in it.
    site_states : list of dict
        Each site's own persistent state, by site index; :meth:`train` replaces them.
    global_state, server_state : dict
        The star server's model and strategy state.
    shared : list of dict
        The model each site holds, by site index (decentralised topologies).
    clients_per_round : int, float or None
        The sites sampled per round, see :func:`fedlab.comm.wire.sample_sites`.
    memory : dict
        A topology's own notes, kept across rounds (integer values also in checkpoints).
    report : dict
        Numbers to add to this round's row of ``History.rounds``.
    excluded : set of str
        Sites whose update this round was dropped for non-finite values.
    trained : dict of str to int
        Samples each site trained on this round (for the network model's timings).
    links : dict of str to Link, optional
        The run's network (:func:`fedlab.comm.network.get_network`), None without one.
    availability : dict of str to Availability, optional
        When each site is online (:mod:`fedlab.comm.availability`), None: always.
    clock : float
        Simulated seconds when this round starts (the network's clock).
    """

    round: int
    strategy: Strategy
    sites: Sequence[Site]
    seed: int
    config: TrainConfig
    spec: ModelSpec
    device: str
    executor: Executor
    wire: Wire
    history: History
    site_states: list[State]
    global_state: State = field(default_factory=dict)
    server_state: State = field(default_factory=dict)
    shared: list[State] = field(default_factory=list)
    clients_per_round: int | float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    trained: dict[str, int] = field(default_factory=dict)
    links: dict | None = None
    availability: dict | None = None
    clock: float = 0.0
    names: list[str] = field(init=False, repr=False)  # the sites' names, once a round

    def __post_init__(self) -> None:
        self.names = [s.name for s in self.sites]

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def n_examples(self) -> list[int]:
        return [s.n_examples for s in self.sites]

    def participants(self) -> list[int]:
        """The sites taking part in this round (all, or the seeded sample)."""
        if not self.strategy.communicates:
            return list(range(self.n_sites))
        chosen = sample_sites(self.n_sites, self.clients_per_round, self.seed, self.round)
        return self._online(chosen) if self.availability else chosen

    def _online(self, chosen: list[int]) -> list[int]:
        """The sampled sites online when the round starts; when none is, the round waits
        (``report["wait_s"]``) for the first to come back. Skips are logged in events."""
        when = {i: self.availability[self.names[i]].next_online(self.clock) for i in chosen}
        starts = [t for t in when.values() if t is not None]
        start = min(starts) if starts else None
        if start is not None and start > self.clock:
            self.report["wait_s"] = start - self.clock
        online = [i for i in chosen if start is not None and when[i] == start]
        for i in chosen:
            if when[i] is None:
                if not self.memory.get(f"left:{self.names[i]}"):
                    self.memory[f"left:{self.names[i]}"] = 1
                    self._event(i, "left the federation")
            elif i not in online:
                self._event(i, f"offline: skipped the round (online again at "
                               f"{when[i] / 3600:.2f} h)")
        return online

    def _event(self, i: int, text: str) -> None:
        self.history.events.append({"round": self.round, "site": self.names[i], "event": text})

    def train(self, indices: Sequence[int], starts: Sequence[State],
              visit: int = 0) -> list[Update]:
        """The client half at each site of ``indices`` from the state in ``starts``;
        ``visit`` numbers repeated visits within a round (their own batch order)."""
        seed = self.seed if visit == 0 else derive_seed(self.seed, visit)
        config = self.config.for_round(self.round)  # this round's learning rate
        tasks = [SiteTask(self.strategy, self.spec, self.sites[i], i, self.round, seed, start,
                          self.site_states[i], config, self.device)
                 for i, start in zip(indices, starts, strict=True)]
        results = self.executor.map(tasks)
        for i, res in zip(indices, results, strict=True):
            if res is None:  # the executor lost the site (a deployed node that went away)
                self._event(i, "dropped out: no reply this round")
                continue
            self.site_states[i] = res.site_state
            name = self.sites[i].name
            self.trained[name] = self.trained.get(name, 0) + self.samples(res.update)
        return [res.update if res is not None else None for res in results]

    def samples(self, update: Update) -> int:
        """Training samples a site processed (for the network model's compute time)."""
        if self.config.steps is None:
            return int(self.config.epochs * update.n_examples)
        return int(update.metrics.get("steps", 0)) * self.config.batch_size

    def send(self, src: int, dst: int, state: State, reference: State | None = None) -> State:
        """``src`` sends ``state`` to ``dst`` (either may be ``SERVER``); returns what
        ``dst`` decodes. ``reference``: what the sender received this round (the base of
        an uplink delta). A site-to-site message is logged at the sender
        (``direction="up"``, ``peer`` the receiver)."""
        if dst == SERVER:
            return self.wire.send_up(self.history, self.round, src, self.names[src], state,
                                     reference if reference is not None else {})
        if src == SERVER:
            return self.wire.send_down(self.history, self.round, dst, self.names[dst], state)
        return self.wire.send_peer(self.history, self.round, src, dst, self.names, state, "up")

    def receive(self, dst: int, src: int, state: State) -> State:
        """The same site-to-site message as :meth:`send`, logged at the receiver
        (``direction="down"``, ``peer`` the sender), as the star logs its broadcast."""
        return self.wire.send_peer(self.history, self.round, dst, src, self.names, state,
                                   "down")

    def exclude_nonfinite(self, updates: Sequence[Update]) -> list[Update]:
        """The updates without NaN or inf; each excluded one is logged in ``events``."""
        good = []
        for u in updates:
            if is_finite(u.payload):
                good.append(u)
            else:
                self.excluded.add(u.site)
                self.history.events.append({"round": self.round, "site": u.site,
                                            "event": "excluded: non-finite update"})
        return good

    def merge(self, updates: Sequence[Update], current: State) -> State:
        """The strategy's server half over ``updates`` (those with examples), from
        ``current``; ``current`` itself when nothing is left."""
        good = [u for u in updates if u.n_examples > 0]
        return self.strategy.aggregate(current, good, {})[0] if good else current

    def log(self, message: dict) -> None:
        """A ledger row besides the model exchange (e.g. key agreement)."""
        self.history.log_message(self.round, message["site"], message["direction"],
                                 message["bytes"], message.get("raw_bytes"),
                                 message.get("what", "model"), message.get("peer", "server"))
