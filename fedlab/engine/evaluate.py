"""How a run scores its models after a round.

Each site's test patients are scored by the model that site would use
(``topology.eval_states``: the global model, or the site's own), the union of all
sites' patients under the name ``"global"``, each patient by their own site's model.
The decentralised topologies, where every site holds a model of its own, also score
every site's model on the pooled test set of all sites (split ``"pooled"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..history import GLOBAL, History
from ..metrics import task_metrics
from ..sites import Site
from ..strategies.base import State
from ..training import predict

__all__ = ["score_sites", "evaluate_sites", "evaluate_pooled", "pooled_test", "POOLED"]

POOLED = "pooled"


def score_sites(net: nn.Module, states: Sequence[State], sites: Sequence[Site], split: str,
                dev: torch.device) -> list[tuple[str, dict]]:
    """``states[i]`` scored on site ``i``'s ``split``, then every site's patients together
    (``"global"``, each scored by their own site's model): (name, metrics) pairs. A state
    shared by consecutive sites is loaded once. The one scoring of fedlab: the run's
    evaluation and :func:`fedlab.evaluate` both use it."""
    rows, probs, labels, inputs, loss, loaded = [], [], [], [], 0.0, None
    for site, state in zip(sites, states, strict=True):
        if state is not loaded:
            net.load_state_dict(state)
            loaded = state
        x, y = site.tensors(split, dev)
        p, site_loss = predict(net, x, y)
        y_np, x_np = y.cpu().numpy(), _inputs(x, y)
        rows.append((site.name, task_metrics(p, y_np, site_loss, x_np)))
        if len(y_np):
            probs.append(p)
            labels.append(y_np)
            inputs.append(x_np)
            loss += site_loss
    x_all = np.concatenate(inputs) if inputs and inputs[0] is not None else None
    rows.append((GLOBAL, task_metrics(np.concatenate(probs), np.concatenate(labels), loss,
                                      x_all)))
    return rows


def _inputs(x: torch.Tensor, y: torch.Tensor) -> np.ndarray | None:
    """The inputs as an array where the metrics need them (a reconstruction scores the
    zero-filled images too), else None."""
    return x.cpu().numpy() if y.is_floating_point() else None


def evaluate_sites(history: History, rnd: int, net: nn.Module, states: Sequence[State],
                   sites: Sequence[Site], splits: Sequence[str], dev: torch.device,
                   score=None) -> None:
    """Log :func:`score_sites` of every split in ``splits`` into the History; ``score``
    replaces it where the sites' data are elsewhere (an executor's ``score_sites``: a
    deployment scores at the sites' nodes)."""
    for split in splits:
        for name, metrics in (score or score_sites)(net, states, sites, split, dev):
            history.log_metrics(rnd, name, split, metrics)


def pooled_test(sites: Sequence[Site], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test splits of all sites, concatenated."""
    xs, ys = zip(*(s.tensors("test", dev) for s in sites), strict=True)
    return torch.cat(xs), torch.cat(ys)


def evaluate_pooled(history: History, rnd: int, net: nn.Module, states: Sequence[State],
                    sites: Sequence[Site], pooled: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Score every site's model on the union of all sites' test splits."""
    x, y = pooled
    done: dict[int, dict] = {}  # one model shared by all sites (cyclic, swarm) runs once
    for site, state in zip(sites, states, strict=True):
        if id(state) not in done:
            net.load_state_dict(state)
            probs, loss = predict(net, x, y)
            done[id(state)] = task_metrics(probs, y.cpu().numpy(), loss, _inputs(x, y))
        history.log_metrics(rnd, site.name, POOLED, dict(done[id(state)]))
