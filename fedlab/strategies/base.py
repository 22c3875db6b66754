"""The strategy interface: a client half that runs at a site and a server half.

A strategy is a frozen dataclass of hyper-parameters. The state it needs between
rounds is passed in and out explicitly (server state held by the run loop, site state
held by each site), so strategies stay pure, checkpoints capture everything, and
resuming a run reproduces it. Messages and model states are flat ``{name: tensor}``
dicts; a strategy's own server and site state may nest (:mod:`fedlab.state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..state import State, Tree
from ..training import TrainConfig, train_epochs
from .robust import Rule, combine_states, get_rule

__all__ = ["Strategy", "ClientContext", "Update", "State", "Tree"]


@dataclass
class Update:
    """What a site sends back after local training.

    Parameters
    ----------
    site : str
        Name of the sending site.
    payload : dict of tensors
        What it sends: its new weights or their changes (see :attr:`Strategy.payload`).
    n_examples : int
        Its training examples: the update's weight in the mean.
    metrics : dict of str to float
        Numbers about the local training, e.g. ``train_loss`` and ``steps``.
    """

    site: str
    payload: State
    n_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class ClientContext:
    """What the client half of a strategy can use while it runs at one site.

    ``model`` already holds the state chosen by :meth:`Strategy.local_start`;
    ``received`` is what the server sent; ``site_state`` is the site's own persistent
    state, which the strategy may read and update in place. The site's data are reached
    only through :meth:`train`.

    Parameters
    ----------
    site : str
        Name of the site.
    round : int
        The current round (from 1).
    config : TrainConfig
        This round's local training settings (learning rate decayed).
    n_examples : int
        The site's training examples (the weight of its update).
    """

    site: str
    round: int
    model: nn.Module
    received: State
    site_state: State
    config: TrainConfig
    n_examples: int
    _train: Callable[..., dict[str, float]]

    def train(self, extra_loss=None, after_backward=None, **hooks) -> dict[str, float]:
        """Run the local epochs on this site's training data (see ``train_epochs``);
        further keywords go to the strategy's :meth:`Strategy.site_train` (a strategy
        that trains in phases or on its own loss reads them there)."""
        return self._train(extra_loss=extra_loss, after_backward=after_backward, **hooks)

    def model_state(self) -> State:
        """A detached copy of the model's current state."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def update(self, payload: State, metrics: dict[str, float] | None = None) -> Update:
        """Wrap ``payload`` as this site's reply, weighted by its example count."""
        return Update(self.site, payload, self.n_examples, dict(metrics or {}))


@dataclass(frozen=True)
class Strategy:
    """Base class of FL algorithms. Subclasses override the hooks they change.

    Class attributes: ``name`` (lowercase, used by the CLI), ``communicates`` (False for
    baselines that exchange nothing), ``pooled`` (True to train on the pooled data),
    ``payload`` (what a site's update carries: ``"weights"``, its new model state, or
    ``"changes"``, the new state minus the one it started from; robust aggregation and
    poisoning attacks read it), ``peer_to_peer`` (True when the server half is a plain
    example-weighted mean without server state, which a site can run: such strategies
    also run on the decentralised topologies).

    Every strategy whose sites send their weights has a ``combine`` slot (keyword only):
    ``None`` (default) for its own mean, or a robust rule from
    :mod:`fedlab.strategies.robust` (a :class:`~fedlab.strategies.robust.Rule` or its
    name: ``FedAvg(combine="median")``) that combines the round's updates into one, which
    the strategy's server half then applies (see :meth:`server_step`).
    """

    name: ClassVar[str] = "strategy"
    communicates: ClassVar[bool] = True
    pooled: ClassVar[bool] = False
    payload: ClassVar[str] = "weights"
    peer_to_peer: ClassVar[bool] = False
    asynchronous: ClassVar[bool] = False
    combine: Rule | str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.combine is None:
            return
        object.__setattr__(self, "combine", get_rule(self.combine))
        if not self.communicates or self.payload != "weights":
            raise ValueError(f"combine={self.combine} needs a strategy whose sites send their "
                             f"weights (fedavg, fedprox, fedavgm, fedadam, fedbn, ditto, ...); "
                             f"{self.name!r} sends {self.payload!r}")

    @property
    def rule(self) -> Rule | None:
        """The robust rule of the server half (``combine``), or None for the mean."""
        return self.combine

    @property
    def label(self) -> str:
        """The strategy's name, with its robust rule if it has one (``fedavg+median``)."""
        return f"{self.name}+{self.rule.name}" if self.rule is not None else self.name

    def bind(self, model: nn.Module, examples: dict[str, int]) -> Strategy:
        """The strategy to use for this run; ``run`` calls it once, with the built model
        and the federation: each site's training examples by site name.

        Strategies that must know the model's structure (which state keys are trainable
        parameters, which belong to normalisation layers) or the whole federation (SCAFFOLD's
        share of examples when only some sites take part, the sites an attack names)
        resolve or check it here and return a copy made with
        :func:`dataclasses.replace`. The default returns ``self``.
        """
        return self

    # -- server half -------------------------------------------------------------
    def init_global_state(self, initial: State) -> State:
        """The server's model before round 1, from the common initial one (itself by
        default; IFCA's server holds several)."""
        return initial

    def final_model(self, global_state: State, server_state: State) -> State:
        """The run's one model (``History.final_state``) from the server's state (the
        global state by default)."""
        return global_state

    def init_server_state(self, global_state: State) -> State:
        """Server-side state kept across rounds (e.g. momentum); none by default."""
        return {}

    def message_down(self, global_state: State, server_state: State) -> State:
        """What the server sends to each selected site (the global state by default)."""
        return global_state

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        """Combine the sites' updates into the next global state."""
        raise NotImplementedError

    def server_step(self, global_state: State, updates: list[Update], server_state: State,
                    ) -> tuple[State, State, dict[str, float]]:
        """What the server does with a round's updates: :meth:`aggregate` them, or, with
        a robust rule, aggregate the one update the rule combines them into. Returns the
        new global state, the new server state and the rule's per-site numbers for the
        round's row of ``History.rounds`` (``"krum_selected/site-1"``, ...)."""
        if self.rule is None:
            return (*self.aggregate(global_state, updates, server_state), {})
        payload, report = combine_states(self.rule, global_state,
                                         [u.payload for u in updates],
                                         [u.n_examples for u in updates])
        combined = Update(self.rule.name, payload, sum(u.n_examples for u in updates))
        new_global, new_server = self.aggregate(global_state, [combined], server_state)
        return new_global, new_server, {f"{column}/{u.site}": float(value)
                                        for column, values in report.items()
                                        for u, value in zip(updates, values, strict=True)}

    def extra_messages(self, rnd: int, updates: list[Update]) -> list[dict]:
        """Messages besides the model exchange that this round needed (e.g. key
        agreement for secure aggregation), as ledger rows: dicts with ``site``,
        ``direction``, ``bytes`` and optionally ``what`` and ``peer``. None by default."""
        return []

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        """Numbers to add to this round's row of ``History.rounds`` (e.g. the privacy
        budget spent so far). Called after :meth:`aggregate`; nothing by default."""
        return {}

    # -- client half -------------------------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        """A site's own state before round 1 (e.g. its local layers); none by default.

        ``global_state`` is the common initial model, which every site can build
        itself from the shared seed: using it sends nothing.
        """
        return {}

    def local_start(self, received: State, site_state: State) -> State:
        """The complete model state a site loads before training; by default what it
        received."""
        return received

    def client_update(self, ctx: ClientContext) -> Update:
        """Local training at a site; by default plain local SGD, sending the new weights."""
        metrics = ctx.train()
        return ctx.update(ctx.model_state(), metrics)

    def eval_state(self, global_state: State, site_state: State) -> State:
        """The state evaluated on a site's data; the global model by default."""
        return global_state

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator,
                   **hooks) -> dict[str, float]:
        """The local training loop the site runs for :meth:`ClientContext.train`."""
        return train_epochs(model, x, y, config, generator, **hooks)
