"""``run``: the one round loop of fedlab.

Each round: the server sends the global state to the sites, each site trains locally
(the strategy's client half, at the site, on the site's own data), the sites send
their updates, the server aggregates them (the strategy's server half). Every message
is counted in the History's ledger; the model is evaluated on every site's test split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from .comm.network import get_network, network_config, round_seconds
from .comm.wire import Wire, participants_per_round, sample_sites
from .history import GLOBAL, History
from .metrics import task_metrics
from .models import create_model
from .sites import Federation, Site
from .strategies import Strategy, get, is_finite
from .strategies.base import ClientContext, State, Update
from .training import TrainConfig, derive_seed, predict, resolve_device

__all__ = ["run", "SequentialExecutor"]

Callback = Callable[[History, int], Any]


class SequentialExecutor:
    """Runs the sites' local work one after the other (the default executor).

    An executor only needs ``map(fn, items) -> list``; a parallel one can replace it
    without any change to the strategies.
    """

    def map(self, fn: Callable, items: Iterable) -> list:
        return [fn(item) for item in items]


def _build_model(model: str | nn.Module | Callable[[], nn.Module], sites: Sequence[Site],
                 seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if isinstance(model, nn.Module):
        import copy

        return copy.deepcopy(model)
    if isinstance(model, str):
        x, _ = sites[0].tensors("train")
        return create_model(model, in_channels=x.shape[1], n_classes=len(sites[0].classes),
                            image_size=x.shape[-1])
    if callable(model):
        return model()
    raise TypeError(f"model must be a name, an nn.Module or a factory, got {type(model)}")


def _end_of_round(history: History, rnd: int, bar, progress: bool,
                  callbacks: Sequence[Callback]) -> bool:
    """Show the round's accuracy on the bar and run the callbacks; True to stop the run."""
    if progress and history.metrics and history.metrics[-1]["round"] == rnd:
        bar.set_postfix(acc=f"{history.final('accuracy'):.3f}")
    if any(cb(history, rnd) is True for cb in callbacks):
        history.events.append({"round": rnd, "site": GLOBAL, "event": "stopped by callback"})
        return True
    return False


def _check_secagg_codec(strategy: Strategy, wire) -> None:
    """Masks only cancel when the server sums exactly what the sites masked."""
    from .comm.codecs import Identity

    layer = strategy
    while layer is not None:
        if getattr(layer, "name", None) == "secagg" and not isinstance(wire.up, Identity):
            raise ValueError(f"uplink={wire.up} cannot be combined with secure aggregation: "
                             "lossy codecs break the pairwise masks; use uplink=None")
        layer = getattr(layer, "base", None)


def _clone(state: State) -> State:
    return {k: v.detach().clone() for k, v in state.items()}


def run(sites: Federation | Sequence[Site], model: str | nn.Module | Callable = "cnn",
        strategy: str | Strategy = "fedavg", rounds: int = 10, local_epochs: int = 1,
        local_steps: int | None = None, batch_size: int = 64, optimizer: str = "adam",
        lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
        lr_decay: float = 1.0, augment: bool = False, seed: int = 0,
        device: str = "auto", eval_every: int = 1, eval_splits: Sequence[str] = ("test",),
        progress: bool = True, callbacks: Sequence[Callback] = (),
        run_dir: str | Path | None = None, resume: bool = False,
        executor: SequentialExecutor | None = None, topology: str | Any = "star",
        uplink: Any = None, downlink: Any = None, clients_per_round: int | float | None = None,
        network: Any = None) -> History:
    """Simulate a federation and return its :class:`History`.

    Parameters
    ----------
    sites : Federation or list of Site
        The participants (e.g. from :func:`fedlab.data.split`).
    model : str, nn.Module or callable
        ``"cnn"`` (default), ``"mlp"``, ``"resnet18"``, ``"densenet121"``, a module (copied,
        so the caller's stays untouched) or a factory returning one.
    strategy : str or Strategy
        A name from ``fedlab.strategies.STRATEGIES`` (``"fedavg"``, ``"fedprox"``,
        ``"scaffold"``, ``"fedadam"``, ``"fedbn"``, ``"ditto"``, ...; the baselines
        ``"centralized"`` on pooled data and ``"local"`` without federation), or a
        :class:`~fedlab.strategies.Strategy` instance (e.g. ``FedProx(mu=0.1)``).
    rounds : int
        Communication rounds (for ``centralized``: rounds of ``local_epochs`` epochs).
    local_epochs, local_steps, batch_size, optimizer, lr, momentum, weight_decay, lr_decay, augment
        Local training (see :class:`~fedlab.training.TrainConfig`).
    seed : int
        Fixes the initial model, the sites' batch order and dropout: same seed, same
        machine, same History.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...
    eval_every : int
        Evaluate every this many rounds (the initial model and the last round always).
    progress : bool
        Show a progress bar over rounds.
    callbacks : list of callables
        ``cb(history, round)`` after each round; a callback returning True stops the run.
    run_dir : path, optional
        Where to write ``config.json``, ``history.json`` and a checkpoint per round.
    resume : bool
        Continue the run found in ``run_dir`` from its last checkpoint.
    topology : str or Topology
        Who talks to whom: ``"star"`` (a server, default), or a decentralised topology
        from :mod:`fedlab.topologies` (``Cyclic()``, ``Gossip(graph="torus")``,
        ``Swarm()``, or a name such as ``"ring"``); those keep one model per site, write
        only ``history.json`` to ``run_dir`` and cannot resume.
    uplink, downlink : str or Codec, optional
        How messages are encoded site -> server and server -> site (default: as they are).
        A :class:`~fedlab.comm.Codec` (``fl.comm.Delta() | fl.comm.TopK(0.01,
        error_feedback=True)``) or a name (``"fp16"``, ``"bf16"``, ``"int8"``,
        ``"int8-sr"``, ``"topk:0.01"``, ``"topk-ef:0.01"``, joined with ``"|"``); see
        :mod:`fedlab.comm.codecs`. The ledger counts the serialised encoded bytes.
    clients_per_round : int or float, optional
        Sites sampled (seeded) to take part in each round: a count ``k`` or a fraction of
        the sites; default every site. Only participants train, send and are logged.
    network : str, Link or dict, optional
        A :class:`~fedlab.comm.Link` profile name (``"hospital-fibre"``,
        ``"rural-clinic"``, ...; ``"mixed"`` cycles profiles over the sites), a Link, or a
        dict site -> Link; adds simulated seconds per round (``sim_s``) and so far
        (``sim_total_s``) and the slowest site (``straggler``) to ``History.rounds``.
    """
    strategy = get(strategy)
    sites = list(sites)
    if not sites:
        raise ValueError("sites must hold at least one Site")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every!r}")
    if resume and run_dir is None:
        raise ValueError("resume=True needs run_dir")
    cfg = TrainConfig(epochs=local_epochs, steps=local_steps, batch_size=batch_size,
                      optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                      lr_decay=lr_decay, augment=augment)
    dev = resolve_device(device)
    from . import topologies  # lazy: topologies reuse this module's pieces

    topo = topologies.get(topology)
    if topo.name != "star":
        if resume:
            raise ValueError("resume=True works only with topology='star'")
        if (uplink, downlink, clients_per_round, network) != (None, None, None, None):
            raise ValueError("uplink, downlink, clients_per_round and network work only with "
                             "topology='star'")
        from .topologies.loop import run_topology

        return run_topology(topo, sites, model, strategy, rounds, cfg, seed, dev, eval_every,
                            eval_splits, progress, callbacks, run_dir)
    trainers = [Site.pool(sites)] if strategy.pooled else sites
    if strategy.communicates:
        participants_per_round(len(trainers), clients_per_round)  # fails early if invalid
    wire = Wire(uplink, downlink, len(trainers), seed, getattr(strategy, "payload", "weights"))
    _check_secagg_codec(strategy, wire)
    links = (get_network(network, [t.name for t in trainers]) if network is not None
             else None)
    config = json.loads(json.dumps({
        "strategy": strategy.name, "strategy_params": asdict(strategy),
        "model": model if isinstance(model, str) else type(model).__name__,
        "rounds": rounds, "train": asdict(cfg), "seed": seed, "eval_every": eval_every,
        "eval_splits": list(eval_splits), "sites": [s.name for s in sites],
        "uplink": str(wire.up), "downlink": str(wire.down),
        "clients_per_round": clients_per_round,
        "network": network_config(links) if links is not None else None,
    }, default=str))
    net = _build_model(model, sites, seed).to(dev)
    strategy = strategy.setup(net).for_sites([t.n_examples for t in trainers])
    global_state = _clone(net.state_dict())
    server_state = strategy.init_server_state(global_state)
    site_states: list[State] = [strategy.init_site_state(_clone(global_state))
                                for _ in trainers]
    wire.start(strategy.message_down(global_state, server_state))
    history, start = History(config), 1
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None:
        checkpoint.check_config(run_path, config, resume)
        found = checkpoint.load_latest(run_path, len(trainers), dev) if resume else None
        if found is not None:
            last, global_state, server_state, site_states, history = found
            wire.load(checkpoint.load_codec_states(run_path, last, len(trainers), dev))
            history.config = config
            start = last + 1
    if start == 1:
        _evaluate(history, 0, net, strategy, global_state, site_states, sites, trainers,
                  eval_splits, dev)
    executor = executor or SequentialExecutor()
    bar = tqdm(range(start, rounds + 1), desc=strategy.name, disable=not progress,
               initial=start - 1, total=rounds)
    for rnd in bar:
        t0 = time.perf_counter()
        message = strategy.message_down(global_state, server_state)
        talks = strategy.communicates
        chosen = (sample_sites(len(trainers), clients_per_round, seed, rnd) if talks
                  else list(range(len(trainers))))
        received = {i: wire.send_down(history, rnd, i, trainers[i].name, message) if talks
                    else message for i in chosen}

        def local(i: int, rnd: int = rnd, received: dict[int, State] = received) -> Update:
            return _local_round(strategy, net, trainers[i], i, rnd, received[i],
                                site_states[i], cfg.for_round(rnd), seed, dev)

        updates = executor.map(local, chosen)
        t_train = time.perf_counter() - t0
        if talks:  # what arrives is the decoded message: lossy codecs change the average
            for i, u in zip(chosen, updates, strict=True):
                u.payload = wire.send_up(history, rnd, i, u.site, u.payload, received[i])
        good = [u for u in updates if is_finite(u.payload)]
        for u in updates:
            if u not in good:
                history.events.append({"round": rnd, "site": u.site,
                                       "event": "excluded: non-finite update"})
        if good:
            global_state, server_state = strategy.aggregate(global_state, good, server_state)
        for msg in strategy.extra_messages(rnd, updates):
            history.log_message(rnd, msg["site"], msg["direction"], msg["bytes"],
                                msg.get("raw_bytes"), msg.get("what", "model"),
                                msg.get("peer", "server"))
        work = {u.site: _local_samples(u, cfg) for u in updates}
        sim = {}
        if links is not None:
            sim_s, slowest = round_seconds(history.ledger, rnd, work, links)
            total = (history.rounds[-1].get("sim_total_s", 0.0) if history.rounds else 0.0)
            sim = {"sim_s": sim_s, "sim_total_s": total + sim_s, "straggler": slowest}
        t1 = time.perf_counter()
        if rnd % eval_every == 0 or rnd == rounds:
            _evaluate(history, rnd, net, strategy, global_state, site_states, sites, trainers,
                      eval_splits, dev)
        history.rounds.append({
            "round": rnd, "participants": len(updates), "excluded": len(updates) - len(good),
            "sites": [u.site for u in updates], "local_samples": work, **sim,
            "train_s": t_train, "eval_s": time.perf_counter() - t1,
            "wall_s": time.perf_counter() - t0,
            **strategy.round_report(rnd, server_state),
        })
        if run_path is not None:
            checkpoint.save_round(run_path, rnd, global_state, server_state, site_states, history,
                                  codec_states=wire.states)
        if _end_of_round(history, rnd, bar, progress, callbacks):
            break
    bar.close()
    history.final_state = global_state
    own = {t.name: st for t, st in zip(trainers, site_states, strict=True)}
    history.site_states = {s.name: strategy.eval_state(global_state, own.get(s.name, {}))
                           for s in sites}
    if history.last_round > 0:
        history.warn_if_collapsed()
    return history


def _local_samples(update: Update, cfg: TrainConfig) -> int:
    """Training samples a site processed this round (for the network model's compute
    time): its examples times the epochs, or steps times the batch size."""
    if cfg.steps is None:
        return int(cfg.epochs * update.n_examples)
    return int(update.metrics.get("steps", 0)) * cfg.batch_size


def _local_round(strategy: Strategy, net: nn.Module, site: Site, index: int, rnd: int,
                 received: State, site_state: State, cfg: TrainConfig, seed: int,
                 dev: torch.device) -> Update:
    """The client half of ``strategy``, run at ``site`` on its own data."""
    torch.manual_seed(derive_seed(seed, rnd, index, 0))
    generator = torch.Generator().manual_seed(derive_seed(seed, rnd, index, 1))
    net.load_state_dict(strategy.local_start(received, site_state))
    x, y = site.tensors("train", dev)

    def train(**hooks) -> dict[str, float]:
        return strategy.site_train(net, x, y, cfg, generator, **hooks)

    ctx = ClientContext(site.name, rnd, net, received, site_state, cfg, site.n_examples, train)
    return strategy.client_update(ctx)


def _evaluate(history: History, rnd: int, net: nn.Module, strategy: Strategy,
              global_state: State, site_states: list[State], sites: Sequence[Site],
              trainers: Sequence[Site], splits: Sequence[str], dev: torch.device) -> None:
    """Score the model each site would use on its own splits, and on their union."""
    states = {s.name: st for s, st in zip(trainers, site_states, strict=True)}
    loaded = None
    for split in splits:
        probs, labels, loss = [], [], 0.0
        for site in sites:
            state = strategy.eval_state(global_state, states.get(site.name, {}))
            if state is not loaded:
                net.load_state_dict(state)
                loaded = state
            x, y = site.tensors(split, dev)
            p, site_loss = predict(net, x, y)
            y_np = y.cpu().numpy()
            history.log_metrics(rnd, site.name, split,
                                task_metrics(p, y_np, site_loss))
            if len(y_np):
                probs.append(p)
                labels.append(y_np)
                loss += site_loss
        history.log_metrics(rnd, GLOBAL, split, task_metrics(
            np.concatenate(probs), np.concatenate(labels), loss))
