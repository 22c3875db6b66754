"""IFCA: clustered FL, ``k`` models and every site training the one that fits it.

Ghosh, Chung, Yin and Ramchandran, "An Efficient Framework for Clustered Federated
Learning", NeurIPS 2020 (the iterative federated clustering algorithm, model
averaging). When hospitals fall into groups whose data differ (two scanner vendors,
two patient populations), one global model serves none of them well. The server keeps
``k`` cluster models and sends all of them; each site scores them on its own training
data, trains the one with the lowest loss and sends it back; the server averages each
cluster's model over the sites that chose it (a cluster no site chose stays as it was).
The sites' choices are in every round's row of ``History.rounds``
(``cluster/<site>``), and each site is scored with its cluster's model.

The server's model is the ``k`` models, kept as one flat state whose keys carry the
cluster (``"cluster1/features.0.weight"``), since that is what it sends down: ``k``
times FedAvg's downlink, which the ledger shows. A site's reply holds only its cluster's
keys, so the server reads the choice from the message itself, and the uplink is
FedAvg's. ``History.final_state`` is the model of the largest cluster of the last round.
How the clusters start matters: from ``k`` random models, every site's first choice
is decided by the models' initial biases rather than its data, and all sites can pile
into one cluster and stay there (the paper runs several random restarts).
``init="sites"`` (default) spends round 1 on a warm start instead: every site trains the
common initial model, and the server seeds the ``k`` clusters with the most different
of those site models, k-means++ style without the randomness (the first site's, then
each time the one farthest, in weight distance, from those chosen). From round 2 on it
is IFCA. ``init="random"`` is the paper's: cluster 0 starts from the run's initial
model, the others from fresh initialisations seeded by it (so the run's seed fixes them).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from ..models import reinitialised
from ..training import TrainConfig, derive_seed, predict, train_epochs
from .aggregate import weighted_average
from .base import ClientContext, State, Strategy, Update

__all__ = ["IFCA", "cluster_state"]


def _prefix(j: int) -> str:
    return f"cluster{j}/"


def cluster_state(global_state: State, j: int) -> State:
    """Cluster ``j``'s model out of IFCA's flat server state."""
    p = _prefix(j)
    return {k[len(p):]: v for k, v in global_state.items() if k.startswith(p)}


def _reinitialised(model: nn.Module, seed: int) -> State:
    return {k: v.detach().clone() for k, v in reinitialised(model, seed).state_dict().items()}


@dataclass(frozen=True)
class IFCA(Strategy):
    """``k`` cluster models; each site trains the one with its lowest training loss.

    Parameters
    ----------
    k : int
        Number of clusters, >= 1 (1 is FedAvg with an extra scoring pass).
    init : {"sites", "random"}
        How the clusters start: seeded from the sites' models after a warm-up round
        (default), or from random models (the paper's); see the module docstring.
    inits : tuple of dict, keyword only
        The clusters' initial models, set by :meth:`bind` (``run`` calls it).
    """

    name: ClassVar[str] = "ifca"
    k: int = 2
    init: str = "sites"
    inits: tuple = field(default=(), kw_only=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.combine is not None:
            raise ValueError("IFCA averages each cluster over the sites that chose it: "
                             "a robust combine rule over all sites does not apply")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.init not in ("sites", "random"):
            raise ValueError(f"init must be 'sites' or 'random', got {self.init!r}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> IFCA:
        first = next(iter(model.state_dict().values())).detach().cpu().contiguous()
        base = zlib.crc32(first.numpy().tobytes())
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        inits = (initial, *(_reinitialised(model, derive_seed(base, j))
                            for j in range(1, self.k)))
        return replace(self, inits=inits)

    # -- server half -------------------------------------------------------------
    def init_global_state(self, initial: State) -> State:
        inits = self.inits or (initial,) * self.k
        return {_prefix(j) + key: v.to(initial[key].device).clone()
                for j, state in enumerate(inits) for key, v in state.items()}

    def init_server_state(self, global_state: State) -> State:
        return {"examples": torch.zeros(self.k), "seeded": torch.tensor(0)}

    def _warm(self, server_state: State) -> bool:
        return self.init == "sites" and self.k > 1 and not int(server_state["seeded"])

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        new, examples = dict(global_state), torch.zeros(self.k)
        if self._warm(server_state):
            for j, u in enumerate(_farthest([u.payload for u in updates], self.k)):
                new.update({_prefix(j) + k[len(_prefix(0)):]: v for k, v in u.items()})
            return new, {"examples": examples, "seeded": torch.tensor(1)}
        for j in range(self.k):
            chosen = [u for u in updates if _chosen(u) == j]
            if chosen:
                new.update(weighted_average([u.payload for u in chosen],
                                            [u.n_examples for u in chosen]))
                examples[j] = float(sum(u.n_examples for u in chosen))
        return new, {"examples": examples, "seeded": torch.tensor(1)}

    def server_step(self, global_state: State, updates: list[Update], server_state: State,
                    ) -> tuple[State, State, dict[str, float]]:
        new, state = self.aggregate(global_state, updates, server_state)
        return new, state, {f"cluster/{u.site}": float(_chosen(u)) for u in updates}

    def final_model(self, global_state: State, server_state: State) -> State:
        examples = server_state.get("examples")
        j = int(torch.argmax(examples)) if examples is not None and examples.sum() > 0 else 0
        return cluster_state(global_state, j)

    # -- client half -------------------------------------------------------------
    def local_start(self, received: State, site_state: State) -> State:
        return cluster_state(received, 0)

    def client_update(self, ctx: ClientContext) -> Update:
        clusters = [cluster_state(ctx.received, j) for j in range(self.k)]
        if self.k == 1 or (self.init == "sites" and ctx.round == 1):
            j = 0  # one cluster, or the warm start: every site trains the initial model
        else:
            losses = ctx.train(score=clusters)
            j = min(range(self.k), key=lambda i: losses[f"loss/{i}"])
        ctx.model.load_state_dict(clusters[j])
        metrics = ctx.train()
        ctx.site_state["cluster"] = torch.tensor(j)
        payload = {_prefix(j) + k: v for k, v in ctx.model_state().items()}
        return ctx.update(payload, {**metrics, "cluster": float(j)})

    def site_train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   config: TrainConfig, generator: torch.Generator,
                   score: list[State] | None = None, **hooks) -> dict[str, float]:
        if score is None:
            return train_epochs(model, x, y, config, generator, **hooks)
        out = {}
        for j, state in enumerate(score):  # the mean training loss of each cluster model
            model.load_state_dict(state)
            out[f"loss/{j}"] = predict(model, x, y)[1] / max(len(y), 1)
        return out

    def eval_state(self, global_state: State, site_state: State) -> State:
        return cluster_state(global_state, int(site_state.get("cluster", 0)))


def _farthest(states: list[State], k: int) -> list[State]:
    """Up to ``k`` of ``states``: the first, then each time the one farthest (smallest
    distance to those chosen, largest) from the chosen ones."""
    def distance(a: State, b: State) -> float:
        return float(sum(((a[key].double() - b[key].double()) ** 2).sum()
                         for key in a if a[key].is_floating_point()))

    chosen = [0]
    while len(chosen) < min(k, len(states)):
        gaps = [min(distance(s, states[c]) for c in chosen) if i not in chosen else -1.0
                for i, s in enumerate(states)]
        chosen.append(max(range(len(states)), key=gaps.__getitem__))
    return [states[i] for i in chosen]


def _chosen(update: Update) -> int:
    key = next(iter(update.payload))
    return int(key[len("cluster"):key.index("/")])
