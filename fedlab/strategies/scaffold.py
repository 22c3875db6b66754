"""SCAFFOLD: local SGD corrected by control variates against client drift.

Karimireddy, Kale, Mohri, Reddi, Stich and Suresh, "SCAFFOLD: Stochastic Controlled
Averaging for Federated Learning", ICML 2020 (Algorithm 1, option II). The server keeps
a control variate ``c`` (an estimate of the global gradient) and each site its own
``c_i`` (an estimate of its local gradient). A site corrects every local gradient to
``g + c - c_i``, so its steps follow the global direction rather than drift towards its
own optimum. After ``K`` local steps of size ``lr`` from ``x`` to ``y``::

    c_i+ = c_i - c + (x - y) / (K * lr)             # option II
    send   dy = y - x   and   dc = c_i+ - c_i
    server x += server_lr * mean(dy);   c += mean(dc)

Means are weighted by example counts, as in FedAvg (the paper averages uniformly).
With partial participation (``clients_per_round``) the paper scales the server's
``c`` update by ``|S| / N``, the fraction of sites taking part; weighted by examples
that is ``c += sum_{i in S} (n_i / n_all) dc_i``, where ``n_all`` counts every site's
examples (:meth:`Scaffold.bind`). ``c`` travels down with the model and ``dc`` up
with ``dy``: twice FedAvg's traffic, which the ledger shows. Only trainable parameters
have control variates; buffers (BatchNorm statistics) are averaged as in FedAvg.

The derivation assumes plain local SGD: use ``optimizer="sgd"`` (ideally
``momentum=0``); with Adam the correction is only a heuristic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from ..state import Tree
from .aggregate import weighted_average
from .base import ClientContext, State, Strategy, Update
from .fedopt import trainable_keys

__all__ = ["GradientShift", "Scaffold"]

_C = "control/"  # prefix of the control variates in the messages (flat, like any message);
# the server and site states keep them under "control": {"control": {key: tensor}}


@dataclass(frozen=True)
class GradientShift:
    """SCAFFOLD's correction as an ``after_backward`` hook: ``g <- g + shift`` for every
    parameter named in ``shift`` (``c - c_i``). A value rather than a closure, so the
    vectorised executor can apply the same correction to many sites at once."""

    shift: State

    def __call__(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            s = self.shift.get(name)
            if s is not None and p.grad is not None:
                p.grad.add_(s)


@dataclass(frozen=True)
class Scaffold(Strategy):
    """SCAFFOLD with option II control variates.

    Parameters
    ----------
    server_lr : float
        Global step size on the average model change (paper: 1).
    param_keys : tuple of str, keyword only
        Keys that get control variates. Empty (default): the model's trainable
        parameters, found by :meth:`bind` (``run`` calls it); without it, every
        floating-point tensor.
    total_examples : int, keyword only
        Training examples of all sites together, set by :meth:`bind` (``run`` calls
        it); 0 means every site takes part in every round.
    """

    name: ClassVar[str] = "scaffold"
    payload: ClassVar[str] = "changes"
    server_lr: float = 1.0
    param_keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False)
    total_examples: int = field(default=0, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.server_lr > 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> Scaffold:
        keys = self.param_keys or trainable_keys(model)
        return replace(self, param_keys=keys, total_examples=int(sum(examples.values())))

    def _zeros(self, state: State) -> Tree:
        keys = self.param_keys or [k for k, v in state.items() if v.is_floating_point()]
        return {"control": {k: torch.zeros_like(state[k]) for k in keys}}

    # -- server half -------------------------------------------------------------
    def init_server_state(self, global_state: State) -> State:
        return self._zeros(global_state)  # c = 0

    def message_down(self, global_state: State, server_state: Tree) -> State:
        return {**global_state, **{_C + k: c for k, c in server_state["control"].items()}}

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        mean = weighted_average([u.payload for u in updates], [u.n_examples for u in updates])
        control = server_state["control"]
        new_global = {k: x + (self.server_lr * mean[k] if k in control else mean[k])
                      for k, x in global_state.items()}
        # |S| / N of the paper, by examples; 1 when every site took part
        share = (sum(u.n_examples for u in updates) / self.total_examples
                 if self.total_examples else 1.0)
        new_server = {"control": {k: c + share * mean[_C + k] for k, c in control.items()}}
        return new_global, new_server

    # -- client half -------------------------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        return self._zeros(global_state)  # c_i = 0

    def local_start(self, received: State, site_state: State) -> State:
        return {k: v for k, v in received.items() if not k.startswith(_C)}

    def client_update(self, ctx: ClientContext) -> Update:
        if ctx.config.optimizer != "sgd":
            warnings.warn("SCAFFOLD's control variates assume plain local SGD "
                          f"(optimizer='sgd'); with {ctx.config.optimizer!r} the correction "
                          "is only a heuristic", stacklevel=2)
        c_i = dict(ctx.site_state["control"])
        keys = list(c_i)
        c = {k: ctx.received[_C + k] for k in keys}
        x = ctx.model_state()
        metrics = ctx.train(after_backward=GradientShift({k: c[k] - c_i[k] for k in keys}))
        y = ctx.model_state()
        steps, lr = metrics.get("steps", 0.0), ctx.config.lr
        new_c_i = ({k: c_i[k] - c[k] + (x[k] - y[k]) / (steps * lr) for k in keys}
                   if steps else dict(c_i))  # option II; unchanged if nothing was trained
        payload = {k: y[k] - x[k] for k in y}
        payload.update({_C + k: new_c_i[k] - c_i[k] for k in keys})
        ctx.site_state["control"] = new_c_i
        return ctx.update(payload, metrics)
