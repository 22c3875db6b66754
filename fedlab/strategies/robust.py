"""Robust aggregation: combine the sites' updates so that a few bad ones do little harm.

FedAvg takes a mean, and one site can move a mean anywhere. The rules here combine the
*updates* ``delta_i = w_i - w_global`` (one row per site) differently:

- :func:`coordinate_median` and :func:`trimmed_mean`: per coordinate, the median, or
  the mean after dropping the ``beta`` fraction of largest and smallest values (Yin,
  Chen, Ramchandran and Bartlett, "Byzantine-Robust Distributed Learning: Towards
  Optimal Statistical Rates", ICML 2018).
- :func:`krum`: the update closest to its ``n - f - 2`` nearest neighbours, or the mean
  of the ``m`` best such updates (Multi-Krum) (Blanchard, El Mhamdi, Guerraoui and
  Stainer, "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
  NeurIPS 2017).
- :func:`clipped_mean`: every update scaled down to a norm of at most ``max_norm``, then
  averaged (Sun, Kairouz, Suresh and McMahan, "Can You Really Backdoor Federated
  Learning?", arXiv:1911.07963, 2019), which bounds what one boosted update can do.

These are pure functions on arrays of shape ``(n_sites, n_coordinates)``.
:class:`Robust` and its subclasses (:class:`Median`, :class:`TrimmedMean`,
:class:`Krum`, :class:`MultiKrum`, :class:`NormClip`) put a rule in place of the mean
of any strategy whose sites send their weights: the robust combination becomes one
update, which the wrapped strategy's own server half then applies (FedAvg takes it as
the new model, FedAdam takes a server-optimiser step with it). The median, trimmed mean
and Krum count every site once, whatever its size: a site's example count is its own
claim, and a rule meant to resist lies must not believe it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .aggregate import weighted_average
from .base import State, Update
from .combine import clipped_mean, coordinate_median, krum, krum_scores, trimmed_mean
from .wrapper import Wrapper

__all__ = ["coordinate_median", "trimmed_mean", "krum_scores", "krum", "clipped_mean",
           "Robust", "Median", "TrimmedMean", "Krum", "MultiKrum", "NormClip"]

_R = "robust/"  # prefix of the per-site numbers a rule keeps in the server state


@dataclass(frozen=True)
class Robust(Wrapper):
    """Base of the robust rules: a strategy whose server half combines updates robustly.

    Parameters
    ----------
    base : Strategy or str
        The strategy whose mean is replaced (FedAvg by default). Its sites must send
        their weights (``payload == "weights"``): FedAvg, FedProx, FedAvgM, FedOpt and
        the adaptive ones, FedBN, Ditto, FineTuned; not SCAFFOLD or the baselines.
    """

    name: ClassVar[str] = "robust"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base.communicates or self.base.payload != "weights":
            raise ValueError(f"robust aggregation needs a base strategy whose sites send "
                             f"their weights (fedavg, fedprox, fedavgm, fedadam, fedbn, "
                             f"ditto, ...), got {self.base.name!r}")

    def combine(self, deltas: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[float]]]:
        """The combined update from the rows ``deltas``, and per-update numbers to report
        (``{column: one value per row}``)."""
        raise NotImplementedError

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        own = {k: v for k, v in server_state.items() if not k.startswith(_R)}
        ref = updates[0].payload
        unknown = sorted(set(ref) - set(global_state))
        if unknown:
            raise ValueError(f"updates hold keys the global model lacks: {unknown[:3]}")
        keys = [k for k, v in ref.items() if v.is_floating_point()]
        deltas = torch.stack([torch.cat([(u.payload[k] - global_state[k]).reshape(-1)
                                         for k in keys]).to(torch.float64) for u in updates])
        weights = torch.tensor([float(u.n_examples) for u in updates], dtype=torch.float64)
        delta, report = self.combine(deltas, weights)
        others = [{k: v for k, v in u.payload.items() if k not in keys} for u in updates]
        payload = weighted_average(others, weights.tolist()) if others[0] else {}
        start = 0
        for k in keys:
            n = global_state[k].numel()
            step = delta[start:start + n].reshape(global_state[k].shape)
            payload[k] = (global_state[k].to(torch.float64) + step.to(global_state[k].device)
                          ).to(global_state[k].dtype)
            start += n
        combined = Update("robust", payload, int(weights.sum()))
        new_global, new_own = self.base.aggregate(global_state, [combined], own)
        for column, values in report.items():
            for u, value in zip(updates, values, strict=True):
                new_own[f"{_R}{column}/{u.site}"] = torch.tensor(float(value))
        return new_global, new_own

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        own = {k: v for k, v in server_state.items() if not k.startswith(_R)}
        return {**self.base.round_report(rnd, own),
                **{k[len(_R):]: float(v) for k, v in server_state.items() if k.startswith(_R)}}


@dataclass(frozen=True)
class Median(Robust):
    """Coordinate-wise median of the updates (Yin et al. 2018)."""

    name: ClassVar[str] = "median"

    def combine(self, deltas, weights):
        return coordinate_median(deltas), {}


@dataclass(frozen=True)
class TrimmedMean(Robust):
    """Coordinate-wise trimmed mean (Yin et al. 2018).

    ``beta``: fraction dropped at each end, in ``[0, 0.5)``; 0.2 drops one of five sites
    on each side (with fewer than ``1 / beta`` sites nothing is dropped).
    """

    name: ClassVar[str] = "trimmedmean"
    beta: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {self.beta}")

    def combine(self, deltas, weights):
        return trimmed_mean(deltas, self.beta), {}


@dataclass(frozen=True)
class Krum(Robust):
    """Krum (Blanchard et al. 2017): the most central update wins.

    ``n_byzantine``: how many malicious sites to tolerate (``f``); ``m``: how many
    central updates to average (1 is Krum). Reports ``krum_selected/<site>`` (1 or 0).
    """

    name: ClassVar[str] = "krum"
    n_byzantine: int = 1
    m: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_byzantine, int) or self.n_byzantine < 0:
            raise ValueError(f"n_byzantine must be an integer >= 0, got {self.n_byzantine!r}")
        if not isinstance(self.m, int) or self.m < 0:
            raise ValueError(f"m must be an integer >= 0, got {self.m!r}")

    def combine(self, deltas, weights):
        m = self.m or max(len(deltas) - self.n_byzantine, 1)
        delta, chosen = krum(deltas, self.n_byzantine, min(m, len(deltas)))
        return delta, {"krum_selected": [float(i in chosen) for i in range(len(deltas))]}


@dataclass(frozen=True)
class MultiKrum(Krum):
    """Multi-Krum: the mean of the ``m`` most central updates (0: ``n - n_byzantine``)."""

    name: ClassVar[str] = "multikrum"
    m: int = 0


@dataclass(frozen=True)
class NormClip(Robust):
    """Update-norm clipping, then the example-weighted mean (Sun et al. 2019).

    ``max_norm``: the L2 bound on a site's whole update; 0 (default) takes the median
    of the round's update norms, which follows the norms as training slows down.
    Reports ``clip_scale/<site>``, the factor each update was multiplied by.
    """

    name: ClassVar[str] = "normclip"
    max_norm: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.max_norm >= 0:
            raise ValueError(f"max_norm must be >= 0 (0: the median norm), got {self.max_norm}")

    def combine(self, deltas, weights):
        bound = self.max_norm or float(coordinate_median(deltas.norm(dim=1)[:, None])[0])
        if not bound > 0:  # every update is zero
            return deltas.mean(dim=0), {}
        delta, scale = clipped_mean(deltas, bound, weights)
        return delta, {"clip_scale": scale.tolist()}
