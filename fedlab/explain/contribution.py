"""Which hospital helps, which hurts: contributions of sites to the federated model.

A *utility* ``v(S)`` scores what a coalition ``S`` of sites achieves together, e.g. the
test accuracy of a model federated over ``S`` only. From it:

- leave-one-out: ``v(all) - v(all without i)``, what the federation loses without site i;
- the Shapley value: site i's marginal gain ``v(S + i) - v(S)`` averaged over all
  orders in which the sites could join (Shapley, "A Value for n-Person Games",
  Contributions to the Theory of Games II, 1953; for data, Ghorbani and Zou, "Data
  Shapley: Equitable Valuation of Data for Machine Learning", ICML 2019; for FL sites,
  Wang et al., "Measure Contribution of Participants in Federated Learning", IEEE Big
  Data 2019). The values sum to ``v(all) - v(none)`` (efficiency); identical sites get
  equal values (symmetry); a site that never changes ``v`` gets 0 (null player).

Exact Shapley needs ``v`` on all ``2**n`` coalitions, so it is used up to
``exact_up_to`` sites; beyond, a seeded Monte Carlo average over random orders (Castro,
Gomez and Tejada, "Polynomial Calculation of the Shapley Value Based on Sampling",
Computers & Operations Research, 2009). Every coalition is evaluated once
(:class:`CachedUtility`), so leave-one-out after Shapley costs nothing more.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ..sites import Site
from ..training import predict

__all__ = ["CachedUtility", "shapley", "leave_one_out", "contributions", "fl_utility"]

Utility = Callable[[frozenset], float]


class CachedUtility:
    """A utility that evaluates each coalition once; ``values`` holds what it computed."""

    def __init__(self, utility: Utility) -> None:
        self.utility = utility
        self.values: dict[frozenset, float] = {}

    def __call__(self, coalition: Iterable[str]) -> float:
        key = frozenset(coalition)
        if key not in self.values:
            self.values[key] = float(self.utility(key))
        return self.values[key]

    @property
    def evaluations(self) -> int:
        """Number of distinct coalitions evaluated so far."""
        return len(self.values)


def _players(players: Sequence[str]) -> list[str]:
    players = list(players)
    if not players or len(set(players)) != len(players):
        raise ValueError(f"players must be distinct names, at least one, got {players}")
    return players


def _cached(utility: Utility) -> CachedUtility:
    return utility if isinstance(utility, CachedUtility) else CachedUtility(utility)


def leave_one_out(players: Sequence[str], utility: Utility) -> pd.Series:
    """``v(all) - v(all without i)`` for each player ``i``.

    ``players`` are the distinct site names; ``utility`` maps a coalition (a set of
    names) to a float, and is cached as in :func:`shapley`.
    """
    players, v = _players(players), _cached(utility)
    full = v(players)
    return pd.Series({p: full - v(set(players) - {p}) for p in players}, name="leave_one_out")


def _exact(players: list[str], v: CachedUtility) -> dict[str, float]:
    n = len(players)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
              for k in range(n)]
    phi = dict.fromkeys(players, 0.0)
    for p in players:
        others = [q for q in players if q != p]
        for k in range(n):
            for s in itertools.combinations(others, k):
                phi[p] += weight[k] * (v(set(s) | {p}) - v(s))
    return phi


def _sampled(players: list[str], v: CachedUtility, permutations: int,
             seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    phi = dict.fromkeys(players, 0.0)
    for _ in range(permutations):
        joined: set[str] = set()
        before = v(joined)
        for i in rng.permutation(len(players)):
            joined.add(players[i])
            after = v(joined)
            phi[players[i]] += (after - before) / permutations
            before = after
    return phi


def shapley(players: Sequence[str], utility: Utility, exact_up_to: int = 6,
            permutations: int = 100, seed: int = 0) -> pd.Series:
    """Shapley value of each player under ``utility``.

    Parameters
    ----------
    players : list of str
        Site names.
    utility : callable
        ``v(frozenset of names) -> float``; wrapped in :class:`CachedUtility` unless it
        already is one (pass one to reuse its values across calls).
    exact_up_to : int
        Exact enumeration of all ``2**n`` coalitions up to this many players.
    permutations : int
        Random orders sampled beyond ``exact_up_to`` (seeded by ``seed``). Each sampled
        order's gains sum to ``v(all) - v(none)``, so efficiency holds exactly here too.
    """
    players, v = _players(players), _cached(utility)
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    phi = (_exact(players, v) if len(players) <= exact_up_to
           else _sampled(players, v, permutations, seed))
    return pd.Series(phi, name="shapley")


def contributions(players: Sequence[str], utility: Utility, **shapley_options) -> pd.DataFrame:
    """Leave-one-out and Shapley value of each site, from one cache of coalition values.

    The frame's ``attrs`` hold ``v_all``, ``v_none`` and the number of coalitions
    evaluated (``evaluations``).

    Parameters
    ----------
    players, utility
        As for :func:`shapley` (e.g. ``sites.names`` and :func:`fl_utility`).
    **shapley_options
        ``exact_up_to``, ``permutations``, ``seed`` of :func:`shapley`.
    """
    v = _cached(utility)
    frame = pd.concat([leave_one_out(players, v), shapley(players, v, **shapley_options)],
                      axis=1)
    frame.index.name = "site"
    frame.attrs.update(v_all=v(players), v_none=v(()), evaluations=v.evaluations)
    return frame


def fl_utility(sites: Sequence[Site], test: Site | Sequence[Site] | None = None,
               metric: str = "accuracy", split: str = "test", **run_options) -> CachedUtility:
    """The utility "federate over the coalition, score on a fixed test set".

    ``v(S)`` runs :func:`fedlab.run` on the sites in ``S`` (``run_options``: strategy,
    model, rounds, seed, ...; ``progress=False`` by default) and scores the final global
    model on ``test``'s ``split`` (default: all sites' test splits pooled), with
    ``metric`` ``"accuracy"`` or ``"auc"``. ``v(none)`` scores the untrained initial
    model (same seed, same initial weights). Cost: one run per coalition.
    """
    from ..metrics import classification_metrics
    from ..simulation import run

    if metric not in ("accuracy", "auc"):
        raise ValueError(f"metric must be 'accuracy' or 'auc', got {metric!r}")
    by_name = {s.name: s for s in sites}
    pool = Site.pool(list(sites) if test is None else
                     [test] if isinstance(test, Site) else list(test))
    x, y = pool.tensors(split, "cpu")
    options = {"progress": False, **run_options}
    options.setdefault("eval_every", max(int(options.get("rounds", 10)), 1))

    def utility(coalition: frozenset) -> float:
        unknown = set(coalition) - set(by_name)
        if unknown:
            raise ValueError(f"unknown sites {sorted(unknown)}; sites are {sorted(by_name)}")
        members = [s for s in sites if s.name in coalition]
        if not members:  # the initial model, before any training
            history = run(list(sites), **{**options, "rounds": 0})
        else:
            history = run(members, **options)
        net = _net(history, sites, options.get("model", "cnn"))
        with torch.no_grad():
            probs, loss = predict(net, x, y)
        return classification_metrics(probs, y.numpy(), loss)[metric]

    return CachedUtility(utility)


def _net(history, sites, model):
    from .models import build_model

    return build_model(history.final_state, model, sites)
