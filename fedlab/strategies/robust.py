"""Robust aggregation: combine the sites' updates so that a few bad ones do little harm.

FedAvg takes a mean, and one site can move a mean anywhere. The rules here combine the
*updates* ``delta_i = w_i - w_global`` (one row per site) differently:

- :class:`Median` and :class:`TrimmedMean`: per coordinate, the median, or the mean
  after dropping the ``beta`` fraction of largest and smallest values (Yin, Chen,
  Ramchandran and Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
  Statistical Rates", ICML 2018).
- :class:`Krum`: the update closest to its ``n - f - 2`` nearest neighbours, or the mean
  of the ``m`` best such updates (:class:`MultiKrum`) (Blanchard, El Mhamdi, Guerraoui
  and Stainer, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
  Descent", NeurIPS 2017).
- :class:`NormClip`: every update scaled down to a norm of at most ``max_norm``, then
  averaged (Sun, Kairouz, Suresh and McMahan, "Can You Really Backdoor Federated
  Learning?", arXiv:1911.07963, 2019), which bounds what one boosted update can do.

A rule fills the ``combine`` slot of any strategy whose sites send their weights:
``FedAvg(combine=Median())``, ``FedProx(mu=0.1, combine="trimmedmean")``. The rule
turns the round's updates into one combined update, which the strategy's own server
half then applies (FedAvg takes it as the new model, FedAdam takes a server-optimiser
step with it). The names keep working as strategies: ``fl.run(strategy="median")`` and
``fl.run(strategy=Median())`` run FedAvg with that rule. The median, trimmed mean and
Krum count every site once, whatever its size: a site's example count is its own claim,
and a rule meant to resist lies must not believe it.

A rule is a frozen dataclass called as ``rule(deltas, weights)`` with the updates as
rows of a float64 tensor and the sites' example counts; it returns the combined row and
per-update numbers to report in ``History.rounds`` (``{column: one value per row}``).
Write your own the same way. The array functions themselves are in
:mod:`fedlab.strategies.combine`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from .aggregate import weighted_average
from .combine import clipped_mean, coordinate_median, krum, trimmed_mean

__all__ = ["Rule", "Median", "TrimmedMean", "Krum", "MultiKrum", "NormClip", "RULES",
           "get_rule", "combine_states"]

Report = dict[str, list[float]]


@dataclass(frozen=True)
class Rule:
    """Base of the combination rules (see the module docstring)."""

    name: ClassVar[str] = "rule"

    def __call__(self, deltas: torch.Tensor,
                 weights: torch.Tensor) -> tuple[torch.Tensor, Report]:
        raise NotImplementedError

    def __str__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{self.name}({args})" if args else self.name


@dataclass(frozen=True)
class Median(Rule):
    """Coordinate-wise median of the updates (Yin et al. 2018)."""

    name: ClassVar[str] = "median"

    def __call__(self, deltas, weights):
        return coordinate_median(deltas), {}


@dataclass(frozen=True)
class TrimmedMean(Rule):
    """Coordinate-wise trimmed mean (Yin et al. 2018).

    ``beta``: fraction dropped at each end, in ``[0, 0.5)``; 0.2 drops one of five sites
    on each side (with fewer than ``1 / beta`` sites nothing is dropped).
    """

    name: ClassVar[str] = "trimmedmean"
    beta: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {self.beta}")

    def __call__(self, deltas, weights):
        return trimmed_mean(deltas, self.beta), {}


@dataclass(frozen=True)
class Krum(Rule):
    """Krum (Blanchard et al. 2017): the most central update wins.

    ``n_byzantine``: how many malicious sites to tolerate (``f``); ``m``: how many
    central updates to average (1 is Krum). Reports ``krum_selected/<site>`` (1 or 0).
    """

    name: ClassVar[str] = "krum"
    n_byzantine: int = 1
    m: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.n_byzantine, int) or self.n_byzantine < 0:
            raise ValueError(f"n_byzantine must be an integer >= 0, got {self.n_byzantine!r}")
        if not isinstance(self.m, int) or self.m < 0:
            raise ValueError(f"m must be an integer >= 0, got {self.m!r}")

    def __call__(self, deltas, weights):
        if self.n_byzantine >= len(deltas):
            raise ValueError(f"n_byzantine={self.n_byzantine} must be smaller than the round's "
                             f"{len(deltas)} updates (Krum needs more honest sites than that)")
        m = self.m or max(len(deltas) - self.n_byzantine, 1)
        delta, chosen = krum(deltas, self.n_byzantine, min(m, len(deltas)))
        return delta, {"krum_selected": [float(i in chosen) for i in range(len(deltas))]}


@dataclass(frozen=True)
class MultiKrum(Krum):
    """Multi-Krum: the mean of the ``m`` most central updates (0: ``n - n_byzantine``)."""

    name: ClassVar[str] = "multikrum"
    m: int = 0


@dataclass(frozen=True)
class NormClip(Rule):
    """Update-norm clipping, then the example-weighted mean (Sun et al. 2019).

    ``max_norm``: the L2 bound on a site's whole update; 0 (default) takes the median
    of the round's update norms, which follows the norms as training slows down.
    Reports ``clip_scale/<site>``, the factor each update was multiplied by.
    """

    name: ClassVar[str] = "normclip"
    max_norm: float = 0.0

    def __post_init__(self) -> None:
        if not self.max_norm >= 0:
            raise ValueError(f"max_norm must be >= 0 (0: the median norm), got {self.max_norm}")

    def __call__(self, deltas, weights):
        bound = self.max_norm or float(coordinate_median(deltas.norm(dim=1)[:, None])[0])
        if not bound > 0:  # every update is zero
            return deltas.mean(dim=0), {}
        delta, scale = clipped_mean(deltas, bound, weights)
        return delta, {"clip_scale": scale.tolist()}


RULES: dict[str, type[Rule]] = {r.name: r for r in (Median, TrimmedMean, Krum, MultiKrum,
                                                      NormClip)}
_ALIASES = {"trimmed": "trimmedmean", "clip": "normclip", "clipping": "normclip",
            "coordinatemedian": "median"}


def get_rule(rule: str | Rule, **params) -> Rule:
    """A rule from its name (see ``RULES``) and parameters, or ``rule`` itself."""
    if isinstance(rule, Rule):
        return rule
    if not isinstance(rule, str):
        raise TypeError(f"combine must be a Rule or one of {sorted(RULES)}, got {rule!r}")
    key = rule.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in RULES:
        raise ValueError(f"combine must be one of {sorted(RULES)}, got {rule!r}")
    return RULES[key](**params)


def combine_states(rule: Rule, global_state: dict[str, torch.Tensor],
                   payloads: list[dict[str, torch.Tensor]], n_examples: list[int],
                   ) -> tuple[dict[str, torch.Tensor], Report]:
    """Apply ``rule`` to the sites' new weights ``payloads``: the combined new state
    (floating-point tensors through the rule, in float64; integer buffers take the
    example-weighted mean) and the rule's per-update report."""
    unknown = sorted(set(payloads[0]) - set(global_state))
    if unknown:
        raise ValueError(f"updates hold keys the global model lacks: {unknown[:3]}")
    keys = [k for k, v in payloads[0].items() if v.is_floating_point()]
    deltas = torch.stack([torch.cat([(p[k] - global_state[k]).reshape(-1) for k in keys])
                          .to(torch.float64) for p in payloads])
    weights = torch.tensor([float(n) for n in n_examples], dtype=torch.float64)
    delta, report = rule(deltas, weights)
    others = [{k: v for k, v in p.items() if k not in keys} for p in payloads]
    combined = weighted_average(others, weights.tolist()) if others[0] else {}
    start = 0
    for k in keys:
        n = global_state[k].numel()
        step = delta[start:start + n].reshape(global_state[k].shape)
        combined[k] = (global_state[k].to(torch.float64) + step.to(global_state[k].device)
                       ).to(global_state[k].dtype)
        start += n
    return combined, report
