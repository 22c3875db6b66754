"""The round loop of the decentralised topologies (cyclic, gossip, swarm).

It reuses the pieces of :func:`fedlab.run`'s loop: the model factory, the strategy's
client half run at a site (``_local_round``), the evaluation (``_evaluate``), the
History and its ledger. What differs: there is no global model. Each site keeps the
model it shares; it is scored on the site's own test split (the ``global`` row scores
the union of the test sets, each sample by its own site's model) and on the pooled
test set of all sites (split ``"pooled"``). ``History.rounds`` gets the consensus
distance of the sites' models after each round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..comm.codecs import SizeCounter
from ..history import History
from ..metrics import task_metrics
from ..simulation import _build_model, _clone, _end_of_round, _evaluate, _local_round
from ..sites import Site
from ..strategies import FedAvg, Strategy, get, is_finite
from ..strategies.base import State, Update
from ..training import TrainConfig, derive_seed, predict
from .base import RoundContext, Topology, average, consensus_distance

__all__ = ["run_topology", "check_strategy"]

POOLED = "pooled"


class _OwnModel:
    """Stands in for the strategy in ``_evaluate``: each site is scored with the state
    it is given (its own model)."""

    @staticmethod
    def eval_state(global_state: State, site_state: State) -> State:
        return site_state


def check_strategy(strategy: Strategy) -> None:
    """Decentralised topologies need a strategy whose sites send full models that are
    merged by a weighted mean and whose server keeps no state."""
    cls = type(strategy)
    plain = (cls.aggregate is FedAvg.aggregate and cls.message_down is Strategy.message_down
             and cls.init_server_state is Strategy.init_server_state)
    if not plain or strategy.pooled or not strategy.communicates:
        raise ValueError(f"strategy {strategy.name!r} cannot run without a server; with a "
                         "topology other than 'star' use fedavg, fedprox, finetune or ditto")


def run_topology(topology: Topology, sites: Sequence[Site], model, strategy: Strategy | str,
                 rounds: int, cfg: TrainConfig, seed: int, dev: torch.device,
                 eval_every: int = 1, eval_splits: Sequence[str] = ("test",),
                 progress: bool = True, callbacks: Sequence = (),
                 run_dir: str | Path | None = None) -> History:
    """Run ``topology`` over ``sites``; :func:`fedlab.run` calls this for non-star
    topologies (same arguments, already validated)."""
    strategy, sites = get(strategy), list(sites)
    check_strategy(strategy)
    topology.check(len(sites))
    config = json.loads(json.dumps({
        "strategy": strategy.name, "strategy_params": asdict(strategy),
        "topology": topology.name, "topology_params": asdict(topology),
        "model": model if isinstance(model, str) else type(model).__name__,
        "rounds": rounds, "train": asdict(cfg), "seed": seed, "eval_every": eval_every,
        "eval_splits": list(eval_splits), "sites": [s.name for s in sites],
    }, default=str))
    net = _build_model(model, sites, seed).to(dev)
    strategy = strategy.setup(net)
    init = _clone(net.state_dict())
    shared: list[State] = [init] * len(sites)
    site_states = [strategy.init_site_state(_clone(init)) for _ in sites]
    history, memory = History(config), {}
    names, counts = [s.name for s in sites], [s.n_examples for s in sites]
    pooled = _pooled_test(sites, dev) if "test" in eval_splits else None
    wire_size = SizeCounter()  # serialised size per state layout, as the star counts

    def evaluate(rnd: int) -> None:
        own = [strategy.eval_state(sh, st) for sh, st in zip(shared, site_states, strict=True)]
        _evaluate(history, rnd, net, _OwnModel(), {}, own, sites, sites, eval_splits, dev)
        if pooled is not None:
            _evaluate_pooled(history, rnd, net, own, names, pooled)

    evaluate(0)
    bar = tqdm(range(1, rounds + 1), desc=topology.name, disable=not progress)
    for rnd in bar:
        t0 = time.perf_counter()
        excluded: list[str] = []

        def train(i: int, start: State, visit: int = 0, rnd: int = rnd,
                  excluded: list[str] = excluded) -> Update:
            run_seed = seed if visit == 0 else derive_seed(seed, visit)
            u = _local_round(strategy, net, sites[i], i, rnd, start, site_states[i],
                             cfg.for_round(rnd), run_seed, dev)
            if is_finite(u.payload):
                return u
            excluded.append(u.site)
            history.events.append({"round": rnd, "site": u.site,
                                   "event": "excluded: non-finite update"})
            return Update(u.site, start, 0, u.metrics)

        def message(site: int, peer: int, state: State, direction: str, rnd: int = rnd) -> None:
            history.log_message(rnd, names[site], direction, wire_size(state),
                                peer=names[peer])

        def merge(updates: list[Update], current: State) -> State:
            good = [u for u in updates if u.n_examples > 0]
            return strategy.aggregate(current, good, {})[0] if good else current

        ctx = RoundContext(rnd, names, counts, seed, train,
                           lambda s, d, st: message(s, d, st, "up"),
                           lambda d, s, st: message(d, s, st, "down"), merge, memory)
        shared = topology.round(ctx, shared)
        t_train, t1 = time.perf_counter() - t0, time.perf_counter()
        if rnd % eval_every == 0 or rnd == rounds:
            evaluate(rnd)
        history.rounds.append({
            "round": rnd, "participants": len(sites), "excluded": len(set(excluded)),
            "train_s": t_train, "eval_s": time.perf_counter() - t1,
            "wall_s": time.perf_counter() - t0,
            "consensus_distance": consensus_distance(shared), **ctx.report,
        })
        if _end_of_round(history, rnd, bar, progress, callbacks):
            break
    bar.close()
    history.final_state = average(shared)
    history.site_states = {s.name: strategy.eval_state(sh, st)
                           for s, sh, st in zip(sites, shared, site_states, strict=True)}
    if run_dir is not None:
        history.save(Path(run_dir) / "history.json")
    if history.last_round > 0:
        history.warn_if_collapsed()
    return history


def _pooled_test(sites: Sequence[Site], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(s.tensors("test", dev) for s in sites), strict=True)
    return torch.cat(xs), torch.cat(ys)


def _evaluate_pooled(history: History, rnd: int, net, own: list[State], names: list[str],
                     pooled: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Score every site's own model on the union of all sites' test splits."""
    x, y = pooled
    done: dict[int, dict] = {}  # one model shared by all sites (cyclic, swarm) runs once
    for name, state in zip(names, own, strict=True):
        if id(state) not in done:
            net.load_state_dict(state)
            probs, loss = predict(net, x, y)
            done[id(state)] = task_metrics(probs, y.cpu().numpy(), loss)
        history.log_metrics(rnd, name, POOLED, dict(done[id(state)]))
