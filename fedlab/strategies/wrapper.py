"""A strategy that wraps another one and changes a single half of it.

A poisoning attack replaces what some sites send; differential privacy clips and noises
the updates; secure aggregation masks them. Each keeps everything else of the wrapped
strategy (its local training, its server state, its personal models, its robust rule):
:class:`Wrapper` forwards every hook to ``base``, and a subclass overrides the hooks it
changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .base import ClientContext, State, Strategy, Update
from .fedavg import FedAvg
from .robust import Rule

__all__ = ["Wrapper", "wraps"]


def wraps(strategy: Strategy, name: str) -> bool:
    """True when ``strategy`` or a strategy it wraps, at any depth, is named ``name``.

    Parameters
    ----------
    strategy : Strategy
        The outermost strategy of a stack of wrappers.
    name : str
        A strategy's ``name`` (``"secagg"``, ``"dp"``, ...).
    """
    while True:
        if strategy.name == name:
            return True
        if not isinstance(strategy, Wrapper):
            return False
        strategy = strategy.base


@dataclass(frozen=True)
class Wrapper(Strategy):
    """Forwards every hook to ``base``.

    Parameters
    ----------
    base : Strategy or str
        The wrapped strategy, or its name (``"fedprox"``; its default hyper-parameters),
        or a robust rule (``Median()``: FedAvg with that rule).
    """

    base: Strategy = field(default_factory=FedAvg)

    def __post_init__(self) -> None:
        if self.combine is not None:
            raise ValueError(f"combine belongs to the wrapped strategy, e.g. "
                             f"{type(self).__name__}(FedAvg(combine={self.combine!r}), ...)")
        if isinstance(self.base, str | Rule):
            from . import get

            object.__setattr__(self, "base", get(self.base))
        if not isinstance(self.base, Strategy):
            raise TypeError(f"base must be a Strategy or a strategy name, got {self.base!r}")

    @property
    def communicates(self) -> bool:  # type: ignore[override]
        return self.base.communicates

    @property
    def pooled(self) -> bool:  # type: ignore[override]
        return self.base.pooled

    @property
    def payload(self) -> str:  # type: ignore[override]
        return self.base.payload

    @property
    def peer_to_peer(self) -> bool:  # type: ignore[override]
        return self.base.peer_to_peer

    @property
    def rule(self) -> Rule | None:
        return self.base.rule

    @property
    def label(self) -> str:
        return self.name

    def bind(self, model: nn.Module, examples: dict[str, int]) -> Wrapper:
        return replace(self, base=self.base.bind(model, examples))

    # -- server half -------------------------------------------------------------
    def init_global_state(self, initial: State) -> State:
        return self.base.init_global_state(initial)

    def final_model(self, global_state: State, server_state: State) -> State:
        return self.base.final_model(global_state, server_state)

    def init_server_state(self, global_state: State) -> State:
        return self.base.init_server_state(global_state)

    def message_down(self, global_state: State, server_state: State) -> State:
        return self.base.message_down(global_state, server_state)

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        return self.base.aggregate(global_state, updates, server_state)

    def extra_messages(self, rnd: int, updates: list[Update]) -> list[dict]:
        return self.base.extra_messages(rnd, updates)

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        return self.base.round_report(rnd, server_state)

    # -- client half -------------------------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        return self.base.init_site_state(global_state)

    def local_start(self, received: State, site_state: State) -> State:
        return self.base.local_start(received, site_state)

    def client_update(self, ctx: ClientContext) -> Update:
        return self.base.client_update(ctx)

    def eval_state(self, global_state: State, site_state: State) -> State:
        return self.base.eval_state(global_state, site_state)

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, config,
                   generator: torch.Generator, **hooks) -> dict[str, float]:
        return self.base.site_train(model, x, y, config, generator, **hooks)
