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

__all__ = ["evaluate_sites", "evaluate_pooled", "POOLED"]

POOLED = "pooled"


def evaluate_sites(history: History, rnd: int, net: nn.Module, states: Sequence[State],
                   sites: Sequence[Site], splits: Sequence[str], dev: torch.device) -> None:
    """Score ``states[i]`` on site ``i``'s splits, and every site's on their union."""
    loaded = None
    for split in splits:
        probs, labels, loss = [], [], 0.0
        for site, state in zip(sites, states, strict=True):
            if state is not loaded:
                net.load_state_dict(state)
                loaded = state
            x, y = site.tensors(split, dev)
            p, site_loss = predict(net, x, y)
            y_np = y.cpu().numpy()
            history.log_metrics(rnd, site.name, split, task_metrics(p, y_np, site_loss))
            if len(y_np):
                probs.append(p)
                labels.append(y_np)
                loss += site_loss
        history.log_metrics(rnd, GLOBAL, split, task_metrics(
            np.concatenate(probs), np.concatenate(labels), loss))


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
            done[id(state)] = task_metrics(probs, y.cpu().numpy(), loss)
        history.log_metrics(rnd, site.name, POOLED, dict(done[id(state)]))
