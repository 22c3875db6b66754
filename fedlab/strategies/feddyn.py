"""FedDyn: federated learning with a dynamic regulariser.

Acar, Zhao, Matas, Mattina, Whatmough and Saligrama, "Federated Learning Based on
Dynamic Regularization", ICLR 2021. Each site adds to its loss a linear and a quadratic
term that change every round, so that its local optimum moves towards the stationary
point of the *global* loss (FedProx's term alone cannot do that)::

    site i minimises   L_i(t) - <g_i, t> + (alpha / 2) ||t - x||^2
    then               g_i <- g_i - alpha (y_i - x)             (y_i: its new weights)
    server             h   <- h - alpha * (1 / m) sum_{i in P} (y_i - x)
                       x   <- mean_{i in P} y_i - h / alpha

``g_i`` (the site's state) and ``h`` (the server's) start at zero; ``m`` is the number
of sites in the federation, ``P`` those of the round. Means are uniform, as in the
paper. Only trainable parameters carry ``g_i`` and ``h``; buffers are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from .base import ClientContext, State, Strategy, Update
from .fedopt import trainable_keys
from .fedprox import anchor

__all__ = ["FedDyn"]


@dataclass(frozen=True)
class FedDyn(Strategy):
    """FedDyn's dynamic regulariser at the sites and its corrected server mean.

    Parameters
    ----------
    alpha : float
        Strength of the regulariser, > 0 (the paper tunes it in {0.1, 0.01, 0.001}).
    param_keys : tuple of str, keyword only
        Keys with a regulariser state, set by :meth:`bind` (the trainable parameters).
    n_sites : int, keyword only
        Sites in the federation (``m``), set by :meth:`bind`.
    """

    name: ClassVar[str] = "feddyn"
    alpha: float = 0.01
    param_keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False)
    n_sites: int = field(default=0, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> FedDyn:
        return replace(self, param_keys=trainable_keys(model), n_sites=len(examples))

    def _zeros(self, state: State) -> State:
        keys = self.param_keys or [k for k, v in state.items() if v.is_floating_point()]
        return {k: torch.zeros_like(state[k]) for k in keys}

    # -- server half -------------------------------------------------------------
    def init_server_state(self, global_state: State) -> State:
        return {"h": self._zeros(global_state)}

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        m = self.n_sites or len(updates)
        h = {k: hk - self.alpha / m * sum(u.payload[k] - global_state[k] for u in updates)
             for k, hk in server_state["h"].items()}
        new = {}
        for k, x in global_state.items():
            mean = sum(u.payload[k].to(torch.float64) for u in updates) / len(updates)
            if k in h:
                mean = mean - h[k] / self.alpha
            new[k] = mean.round().to(x.dtype) if not x.is_floating_point() else mean.to(x.dtype)
        return new, {"h": h}

    # -- client half -------------------------------------------------------------
    def init_site_state(self, global_state: State) -> State:
        return {"grad": self._zeros(global_state)}

    def client_update(self, ctx: ClientContext) -> Update:
        x = anchor(ctx.model)
        g = ctx.site_state["grad"]
        params = dict(ctx.model.named_parameters())

        def dynamic(model: nn.Module) -> torch.Tensor:
            terms = [-(params[k] * g[k]).sum() + 0.5 * self.alpha * (params[k] - x[k]).pow(2).sum()
                     for k in g if k in params]
            return torch.stack(terms).sum()

        metrics = ctx.train(extra_loss=dynamic)
        y = ctx.model_state()
        ctx.site_state["grad"] = {k: g[k] - self.alpha * (y[k] - x[k]) for k in g}
        return ctx.update(y, metrics)
