"""Client-level differential privacy for federated averaging: clip, then add noise.

McMahan, Ramage, Talwar and Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018 (DP-FedAvg); Geyer, Klein and Nabi, "Differentially Private
Federated Learning: A Client Level Perspective", NeurIPS workshop 2017. Each site's
update ``delta = w_site - w_global`` is scaled down to an L2 norm of at most ``clip``,
so no single site can move the average by more than ``clip / m`` (m sites). Gaussian
noise of standard deviation ``noise_multiplier * clip`` is then added to the *sum* of
the clipped updates:

* ``mode="central"``: by the server (trusted to add it), so the mean carries noise of
  standard deviation ``noise_multiplier * clip / m``;
* ``mode="local"``: by every site to its own update before sending it, so the server
  never sees an un-noised update, at the price of ``sqrt(m)`` times more noise in
  the mean.

The privacy budget of the rounds so far is accounted per round (see
:mod:`fedlab.privacy.accountant`) and reported in ``History.rounds`` as ``epsilon``.

* Central: the neighbouring federations differ by one site's data, which moves the sum
  of clipped updates by at most ``clip`` (add/remove adjacency): the Gaussian mechanism
  with noise multiplier ``noise_multiplier``. The sampling rate of a round is the
  fraction of the sites that took part (1 unless ``run(..., clients_per_round=...)``
  samples them); the accountant treats the sampling as Poisson sampling at that rate,
  the usual approximation for a fixed number of sites drawn uniformly.
* Local: each site's noised update must hide *any* input from the server, and two
  updates clipped to the ball of radius ``clip`` can differ by ``2 * clip``, so the L2
  sensitivity is ``2 * clip`` (the local model: Kasiviswanathan et al. 2011; Duchi,
  Jordan and Wainwright 2013) and the effective noise multiplier is
  ``noise_multiplier / 2``. The server sees who sent, so sampling amplifies nothing:
  ``epsilon`` is that of a site that took part in every round, at sampling rate 1.

The clipped deltas are averaged with equal weights (example-count
weights would let a large site exceed the bound); the wrapped strategy's server step
then applies the noisy mean.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import torch
from torch import nn

from ..state import Tree
from ..strategies.base import ClientContext, State, Update
from ..strategies.fedavg import FedAvg
from ..strategies.wrapper import Wrapper
from ..training import derive_seed
from .accountant import ACCOUNTANTS, epsilon

__all__ = ["DP", "DPFedAvg", "update_delta", "delta_norm", "clip_delta", "add_noise",
           "noise_std"]



def update_delta(payload: State, reference: State) -> State:
    """``payload - reference`` over the floating-point tensors both hold."""
    return {k: payload[k].to(torch.float32) - reference[k].to(torch.float32)
            for k in payload if k in reference and payload[k].is_floating_point()}


def delta_norm(delta: State) -> float:
    """The L2 norm of a delta, over all its tensors taken as one vector."""
    if not delta:
        return 0.0
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in delta.values())))


def clip_delta(delta: State, clip: float) -> tuple[State, float]:
    """``delta`` scaled by ``min(1, clip / norm)`` and its norm before clipping."""
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    norm = delta_norm(delta)
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return {k: v * scale for k, v in delta.items()}, norm


def add_noise(delta: State, std: float, generator: torch.Generator) -> State:
    """``delta`` plus independent Gaussian noise of standard deviation ``std``.

    ``delta`` (a dict of tensors) is not modified; ``generator``, a CPU generator, draws
    the noise of every entry (then moved to each tensor's device)."""
    return {k: v + std * torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device)
            for k, v in delta.items()}


def noise_std(noise_multiplier: float, clip: float, n_sites: int,
              mode: Literal["central", "local"] = "central") -> float:
    """Standard deviation of the noise in the *mean* of ``n_sites`` clipped updates.

    Parameters
    ----------
    noise_multiplier, clip : float
        Sigma and the L2 bound of each site's update, as for :class:`DP`.
    n_sites : int
        How many updates are averaged.
    mode : {"central", "local"}
        ``"central"``: one draw added to the sum (``sigma * clip / n_sites``);
        ``"local"``: one per site (``sigma * clip / sqrt(n_sites)``).
    """
    if mode == "central":
        return noise_multiplier * clip / n_sites
    return noise_multiplier * clip / n_sites ** 0.5


@dataclass(frozen=True)
class DP(Wrapper):
    """Client-level DP around a strategy whose sites send their weights (FedAvg,
    FedProx, FedAvgM, FedOpt, robust aggregators).

    Parameters
    ----------
    base : Strategy or str
        The wrapped algorithm: its client half trains, its server step applies the
        noisy mean update.
    noise_multiplier : float
        Noise standard deviation over ``clip`` (sigma), >= 0; 0 clips without noise.
    clip : float
        Bound on the L2 norm of each site's update, > 0.
    mode : {"central", "local"}
        Who adds the noise (see the module docstring).
    delta : float
        The delta of the reported (epsilon, delta)-DP guarantee.
    accountant : {"rdp", "prv"}
        Opacus accountant used for ``epsilon``.
    seed : int
        Seeds the noise (with the round and the site).
    n_sites : int
        Keyword only, set by ``bind`` (the number of sites, for the sampling rate); leave 0.
    """

    name: ClassVar[str] = "dp"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    noise_multiplier: float = 1.0
    clip: float = 1.0
    mode: Literal["central", "local"] = "central"
    delta: float = 1e-5
    accountant: Literal["rdp", "prv"] = "rdp"
    seed: int = 0
    n_sites: int = field(default=0, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base.rule is not None:
            raise ValueError(f"DP's server half is the noisy mean of the clipped updates, "
                             f"which replaces combine={self.base.rule}; clipping already "
                             f"bounds what one site can do (drop combine, or DP)")
        if self.base.payload != "weights":
            raise ValueError(f"DP wraps strategies whose sites send their weights; "
                             f"{type(self.base).__name__} sends {self.base.payload!r}")
        if self.mode not in ("central", "local"):
            raise ValueError(f"mode must be 'central' or 'local', got {self.mode!r}")
        if self.accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")
        if not self.noise_multiplier >= 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> DP:
        return replace(self, base=self.base.bind(model, examples), n_sites=len(examples))

    @property
    def accounting_sigma(self) -> float:
        """The noise multiplier the accountant sees: noise std over the L2 sensitivity
        (``clip`` in the central model, ``2 * clip`` in the local one)."""
        return self.noise_multiplier if self.mode == "central" else self.noise_multiplier / 2

    def epsilon(self, rounds: int, sample_rate: float = 1.0) -> float:
        """Epsilon spent after ``rounds`` rounds that each sampled sites with
        probability ``sample_rate`` (ignored in the local model: see the module)."""
        rate = sample_rate if self.mode == "central" else 1.0
        return epsilon(self.accounting_sigma, rate, rounds, self.delta, self.accountant)

    # -- server half -------------------------------------------------------------
    def init_server_state(self, global_state: State) -> Tree:
        return {"base": self.base.init_server_state(global_state),
                "dp": {"rates": torch.zeros(0, dtype=torch.float64)}}

    def message_down(self, global_state: State, server_state: Tree) -> State:
        return self.base.message_down(global_state, server_state["base"])

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        rates = server_state["dp"]["rates"]
        rnd = len(rates) + 1
        extra = {k for u in updates for k in u.payload if k not in global_state}
        if extra:
            raise ValueError(f"DP wraps strategies whose payload is the model state; "
                             f"{type(self.base).__name__} also sends {sorted(extra)}")
        deltas = [update_delta(u.payload, global_state) for u in updates]
        m = len(deltas)
        mean = {k: sum(d[k] for d in deltas) / m for k in deltas[0]}
        if self.mode == "central" and self.noise_multiplier > 0:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, rnd))
            mean = add_noise(mean, noise_std(self.noise_multiplier, self.clip, m), gen)
        payload = {k: (v + mean[k].to(v.dtype)) if k in mean else updates[0].payload[k]
                   for k, v in global_state.items()}
        merged = Update("dp-mean", payload, sum(u.n_examples for u in updates))
        new_global, inner_state = self.base.aggregate(global_state, [merged],
                                                      server_state["base"])
        norms = torch.tensor([u.metrics.get("update_norm", float("nan")) for u in updates])
        sampled = self.mode == "central" and self.n_sites
        rate = torch.tensor([min(1.0, m / self.n_sites) if sampled else 1.0],
                            dtype=torch.float64)
        return new_global, {"base": inner_state,
                            "dp": {"rates": torch.cat([rates, rate]),
                                   "clipped": (norms > self.clip).double().mean(),
                                   "norm": norms.median().double()}}

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        report = self.base.round_report(rnd, server_state["base"])
        own = server_state["dp"]
        rates = own["rates"].tolist()
        sigma = self.accounting_sigma
        phases = [(sigma, q, 1) for q in rates[:-1]]
        eps = (epsilon(sigma, rates[-1], 1, self.delta, self.accountant, history=phases)
               if rates else 0.0)
        return {**report, "epsilon": eps, "delta": self.delta,
                "clipped_fraction": float(own.get("clipped", torch.nan)),
                "median_update_norm": float(own.get("norm", torch.nan))}

    # -- client half -------------------------------------------------------------
    def client_update(self, ctx: ClientContext) -> Update:
        update = self.base.client_update(ctx)
        delta, norm = clip_delta(update_delta(update.payload, ctx.received), self.clip)
        if self.mode == "local" and self.noise_multiplier > 0:
            gen = torch.Generator().manual_seed(
                derive_seed(self.seed, ctx.round, zlib.crc32(ctx.site.encode())))
            delta = add_noise(delta, self.noise_multiplier * self.clip, gen)
        payload = {k: (ctx.received[k] + delta[k].to(v.dtype)) if k in delta else v
                   for k, v in update.payload.items()}
        return Update(update.site, payload, update.n_examples,
                      {**update.metrics, "update_norm": norm})


def DPFedAvg(noise_multiplier: float = 1.0, clip: float = 1.0,
             mode: Literal["central", "local"] = "central", delta: float = 1e-5,
             accountant: Literal["rdp", "prv"] = "rdp", seed: int = 0) -> DP:
    """DP-FedAvg (McMahan et al. 2018): :class:`DP` around :class:`~fedlab.strategies.FedAvg`.

    ``noise_multiplier``, ``clip``, ``mode``, ``delta``, ``accountant``, ``seed``: as for
    :class:`DP`, with the same defaults."""
    return DP(FedAvg(), noise_multiplier, clip, mode, delta, accountant, seed)

