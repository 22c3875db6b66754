"""Asynchronous FL: the server acts on each arrival instead of waiting for a round.

In synchronous FedAvg every round waits for its slowest site. An asynchronous server
makes a new model version as soon as updates arrive; a site that trained on an old
version sends a *stale* update, which counts less. The staleness ``tau`` of an update is
how many versions the server made since the version the site started from.

- :class:`FedAsync` (Xie, Koyejo and Gupta, "Asynchronous Federated Optimization",
  arXiv:1903.03934, 2019): every arrival makes a version,
  ``x <- (1 - a_t) x + a_t x_site`` with ``a_t = alpha * s(tau)``.
- :class:`FedBuff` (Nguyen et al., "Federated Learning with Buffered Asynchronous
  Aggregation", AISTATS 2022): the server buffers ``k`` arrivals, then
  ``x <- x + server_lr * sum_i (n_i / N) s(tau_i) delta_i`` with ``delta_i`` a site's
  change, ``n_i`` its examples and ``N`` those of the buffer. With fresh updates
  (``tau = 0``) and ``k`` = all sites this is one synchronous FedAvg round.

Staleness weights ``s(tau)``: ``"polynomial"`` ``(1 + tau) ** -a``; ``"hinge"`` 1 up to
``b`` versions, then ``1 / (a (tau - b) + 1)``; ``"constant"`` 1 (Xie et al., section 5).
The run's schedule (who finishes when, on the simulated clock) is
:class:`fedlab.topologies.Asynchronous`, chosen by :func:`fedlab.run` for these strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import ClientContext, State, Update
from .fedavg import FedAvg

__all__ = ["FedAsync", "FedBuff", "staleness_weight", "STALENESS"]

STALENESS = ("polynomial", "hinge", "constant")


def staleness_weight(tau: int, kind: str = "polynomial", a: float = 0.5,
                     b: float = 4.0) -> float:
    """The weight ``s(tau)`` of an update ``tau`` versions old (1 for a fresh one).

    Parameters
    ----------
    tau : int
        Staleness, >= 0.
    kind : {"polynomial", "hinge", "constant"}
        The function (see the module docstring).
    a, b : float
        Its decay and (hinge) the versions tolerated at full weight.
    """
    if tau < 0:
        raise ValueError(f"staleness must be >= 0, got {tau}")
    if kind == "polynomial":
        return float((1.0 + tau) ** -a)
    if kind == "hinge":
        return 1.0 if tau <= b else float(1.0 / (a * (tau - b) + 1.0))
    if kind == "constant":
        return 1.0
    raise ValueError(f"staleness must be one of {STALENESS}, got {kind!r}")


@dataclass(frozen=True)
class _Async(FedAvg):
    """What both asynchronous strategies share: the staleness function and the flags
    that route a run to the asynchronous schedule."""

    asynchronous: ClassVar[bool] = True
    peer_to_peer: ClassVar[bool] = False
    staleness: str = "polynomial"
    a: float = 0.5
    b: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.staleness not in STALENESS:
            raise ValueError(f"staleness must be one of {STALENESS}, got {self.staleness!r}")
        if not self.a >= 0:
            raise ValueError(f"a must be >= 0, got {self.a!r}")
        if self.combine is not None:
            raise ValueError(f"{self.name} combines updates as they arrive; a robust rule "
                             "(combine=) needs a synchronous round: drop combine")

    @property
    def arrivals_per_version(self) -> int:
        """How many arrivals the server waits for before it makes a version."""
        raise NotImplementedError

    def weight(self, tau: int) -> float:
        """The staleness weight of an update ``tau`` versions old."""
        return staleness_weight(tau, self.staleness, self.a, self.b)

    def async_step(self, global_state: State, updates: list[Update],
                   staleness: list[int]) -> tuple[State, list[float]]:
        """The next version from the arrived ``updates`` and their staleness; returns it
        and each update's weight in it."""
        raise NotImplementedError


@dataclass(frozen=True)
class FedAsync(_Async):
    """Each arrival is mixed into the global model with weight ``alpha * s(tau)``.

    Parameters
    ----------
    alpha : float
        The mixing weight of a fresh update, in (0, 1].
    staleness : {"polynomial", "hinge", "constant"}
        How the weight falls with staleness.
    a, b : float
        The staleness function's decay, and the versions a hinge tolerates.
    """

    name: ClassVar[str] = "fedasync"
    alpha: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")

    @property
    def arrivals_per_version(self) -> int:
        return 1

    def async_step(self, global_state: State, updates: list[Update],
                   staleness: list[int]) -> tuple[State, list[float]]:
        (update,), (tau,) = updates, staleness
        w = self.alpha * self.weight(tau)
        new = {}
        for k, g in global_state.items():
            if g.is_floating_point():
                new[k] = (1 - w) * g + w * update.payload[k].to(g.dtype)
            else:  # counters (BatchNorm's batches tracked): the site's
                new[k] = update.payload[k].clone()
        return new, [w]


@dataclass(frozen=True)
class FedBuff(_Async):
    """The server buffers ``k`` arrivals, then applies their staleness-weighted mean
    change; sites send their change (new weights minus the version they received).

    Parameters
    ----------
    k : int
        Arrivals per version (>= 1); ``k`` = the number of sites with equally fast sites
        is synchronous FedAvg.
    server_lr : float
        The server's step on the buffered mean change (> 0).
    staleness : {"polynomial", "hinge", "constant"}
        How an update's weight falls with staleness.
    a, b : float
        The staleness function's decay, and the versions a hinge tolerates.
    """

    name: ClassVar[str] = "fedbuff"
    payload: ClassVar[str] = "changes"
    k: int = 3
    server_lr: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if not self.server_lr > 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr!r}")

    @property
    def arrivals_per_version(self) -> int:
        return self.k

    def client_update(self, ctx: ClientContext) -> Update:
        metrics = ctx.train()
        new = ctx.model_state()
        change = {k: (v - ctx.received[k]) if v.is_floating_point() else v
                  for k, v in new.items()}
        return ctx.update(change, metrics)

    def async_step(self, global_state: State, updates: list[Update],
                   staleness: list[int]) -> tuple[State, list[float]]:
        total = sum(u.n_examples for u in updates)
        weights = [self.server_lr * u.n_examples / total * self.weight(t)
                   for u, t in zip(updates, staleness, strict=True)]
        new = {}
        for k, g in global_state.items():
            if g.is_floating_point():
                step = sum(w * u.payload[k].to(torch.float64)
                           for w, u in zip(weights, updates, strict=True))
                new[k] = (g.to(torch.float64) + step).to(g.dtype)
            else:
                new[k] = updates[-1].payload[k].clone()
        return new, weights
