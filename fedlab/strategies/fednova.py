"""FedNova: normalised averaging for sites that take unequal numbers of local steps.

Wang, Liu, Liang, Joshi and Poor, "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization", NeurIPS 2020. When sites run local epochs over
data of different sizes, a large site takes many more steps than a small one, and
FedAvg's weighted mean of their weights quietly optimises an objective tilted towards
the sites that step most. FedNova divides each site's change by its number of
effective steps ``a_i`` before averaging, and scales the mean back by the average
``tau_eff`` of them::

    d_i     = (y_i - x) / a_i                          # the change per effective step
    x_new   = x + server_lr * tau_eff * sum_i p_i d_i,  tau_eff = sum_i p_i a_i

with ``p_i`` the site's share of the round's examples. For plain SGD ``a_i = tau_i``,
the site's step count; with momentum ``rho`` (the paper's eq. for local momentum)
``a_i = (tau_i - rho (1 - rho^tau_i) / (1 - rho)) / (1 - rho)``. When every site takes
the same number of steps FedNova is FedAvg (a test checks it). A site sends its change
and its step count; the count is 8 bytes beside the model (kept in the update's
metrics, out of the codecs' reach, so a lossy codec cannot round it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

from .aggregate import weighted_average
from .base import ClientContext, State, Strategy, Update

__all__ = ["FedNova", "effective_steps"]


def effective_steps(steps: float, momentum: float = 0.0) -> float:
    """``a_i`` of a site that took ``steps`` local SGD steps with ``momentum``."""
    if momentum == 0 or steps == 0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1 - rho ** steps) / (1 - rho)) / (1 - rho)


@dataclass(frozen=True)
class FedNova(Strategy):
    """Average the sites' changes per effective local step, then rescale.

    Parameters
    ----------
    server_lr : float
        Global step size on the normalised change, > 0 (1 in the paper).
    """

    name: ClassVar[str] = "fednova"
    payload: ClassVar[str] = "changes"
    server_lr: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.server_lr > 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr}")

    def client_update(self, ctx: ClientContext) -> Update:
        if ctx.config.optimizer != "sgd":
            warnings.warn("FedNova normalises by the number of local SGD steps "
                          f"(optimizer='sgd'); with {ctx.config.optimizer!r} it divides by "
                          "the step count, a heuristic", stacklevel=2)
        start = ctx.model_state()
        metrics = ctx.train()
        momentum = ctx.config.momentum if ctx.config.optimizer == "sgd" else 0.0
        metrics["effective_steps"] = effective_steps(metrics["steps"], momentum)
        state = ctx.model_state()
        change = {k: state[k] - start[k] if state[k].is_floating_point() else state[k]
                  for k in state}
        return ctx.update(change, metrics)

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        weights = [u.n_examples for u in updates]
        a = [max(u.metrics.get("effective_steps", 1.0), 1e-12) for u in updates]
        total = float(sum(weights))
        tau_eff = sum(w * ai for w, ai in zip(weights, a, strict=True)) / total
        normalised = [{k: (v / ai if v.is_floating_point() else v) for k, v in u.payload.items()}
                      for u, ai in zip(updates, a, strict=True)]
        mean = weighted_average(normalised, weights)
        new = {k: (x + self.server_lr * tau_eff * mean[k] if x.is_floating_point() else mean[k])
               for k, x in global_state.items()}
        return new, server_state
