"""``run``: the one round loop of fedlab, for every topology.

Validate, build, then for each round: ``topology.round(ctx)`` (the star: the server
sends the model, the sites train — the strategy's client half, through the executor —
and send their updates back, the server aggregates; the decentralised topologies: sites
train and exchange models with each other), evaluate, record, checkpoint. Every message
is counted in the History's ledger; the models are evaluated on every site's test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from . import checkpoint, executors, topologies
from .comm.availability import availability_config
from .comm.network import network_config, round_seconds
from .comm.wire import Wire, participants_per_round
from .engine.config import Comm, Eval, resolve
from .engine.context import RoundContext
from .engine.evaluate import evaluate_pooled, evaluate_sites, pooled_test
from .engine.setup import (
    Callback,
    check_arguments,
    check_secagg_codec,
    clock,
    clone,
    end_of_round,
    run_config,
)
from .history import GLOBAL, History
from .models import ModelSpec
from .sites import Federation, Site
from .strategies import Strategy, get
from .training import Train, resolve_device

__all__ = ["run"]


def run(sites: Federation | Sequence[Site], model: str | nn.Module | Callable = "cnn",
        strategy: str | Strategy = "fedavg", *, rounds: int = 10, seed: int = 0,
        train: Train | None = None, comm: Comm | None = None, evaluation: Eval | None = None,
        topology: str | Any = "star", executor: Any = None, device: str = "auto",
        progress: bool = True, callbacks: Sequence[Callback] = (),
        run_dir: str | Path | None = None, resume: bool = False,
        **shorthands: Any) -> History:
    """Simulate a federation and return its :class:`History`.

    Parameters
    ----------
    sites : Federation or list of Site
        The participants (e.g. from :func:`fedlab.data.split`).
    model : str, nn.Module or callable
        ``"cnn"`` (default), ``"mlp"``, ``"resnet18"``, ``"densenet121"``, a module (copied,
        so the caller's stays untouched) or a factory returning one.
    strategy : str or Strategy
        A name from ``fedlab.strategies.names()`` (``"fedavg"``, ``"fedprox"``,
        ``"scaffold"``, ``"fedadam"``, ``"fedbn"``, ``"ditto"``, ...; the baselines
        ``"centralized"`` on pooled data and ``"local"`` without federation; a robust
        rule, ``"median"``, ``"krum"``, ...: FedAvg with it), or a
        :class:`~fedlab.strategies.Strategy` instance (e.g. ``FedProx(mu=0.1)``,
        ``FedAvg(combine="trimmedmean")``).
    rounds : int
        Communication rounds (for ``centralized``: rounds of ``local_epochs`` epochs).
    train : Train, optional
        How every site trains locally (:class:`fedlab.Train`: epochs or steps, batch size,
        optimiser, learning rate and its decay, ...).
    comm : Comm, optional
        How messages travel (:class:`fedlab.Comm`: uplink and downlink codecs, client
        sampling, a simulated network).
    evaluation : Eval, optional
        How the run is scored (:class:`fedlab.Eval`: every how many rounds, which splits).
    **shorthands
        The fields of those three objects as plain keywords, which fill them:
        ``local_epochs``, ``local_steps``, ``batch_size``, ``optimizer``, ``lr``,
        ``momentum``, ``weight_decay``, ``lr_decay``, ``augment``, ``ssim_weight``
        (Train); ``uplink``, ``downlink``, ``clients_per_round``, ``network``,
        ``availability`` (Comm);
        ``eval_every``, ``eval_splits`` (Eval). Each is described under Other Parameters.
    seed : int
        Fixes the initial model, the sites' batch order and dropout: same seed, same
        machine, same History.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...
    progress : bool
        Show a progress bar over rounds.
    callbacks : list of callables
        ``cb(history, round)`` after each round; a callback returning True stops the run.
    run_dir : path, optional
        Where to write ``config.json``, ``history.json`` and a checkpoint per round.
    resume : bool
        Continue the run found in ``run_dir`` from its last checkpoint.
    executor : str or Executor, optional
        Who runs the sites' local work: ``"sequential"`` (default, this process),
        ``"processes"``, or any object with ``map(tasks)`` (see :mod:`fedlab.executors`).
    topology : str or Topology
        Who talks to whom: ``"star"`` (a server, default), or a decentralised topology
        from :mod:`fedlab.topologies` (``Cyclic()``, ``Gossip(graph="torus")``,
        ``Swarm()``, or a name such as ``"ring"``); those keep one model per site. Every
        topology runs in the same loop: codecs, client sampling, the network model,
        checkpoints, resume and the exclusion of non-finite updates work with each.

    Other Parameters
    ----------------
    uplink, downlink : str or Codec, optional
        How messages are encoded site -> server and server -> site (default: as they are).
        A :class:`~fedlab.comm.Codec` (``fl.comm.Delta() | fl.comm.TopK(0.01,
        error_feedback=True)``) or a name (``"fp16"``, ``"bf16"``, ``"int8"``,
        ``"int8-sr"``, ``"topk:0.01"``, ``"topk-ef:0.01"``, joined with ``"|"``); see
        :mod:`fedlab.comm.codecs`. The ledger counts the serialised encoded bytes.
    clients_per_round : int or float, optional
        Sites sampled (seeded) to take part in each round: a count ``k`` or a fraction of
        the sites; default every site. Only participants train, send and are logged; on a
        decentralised topology the others sit the round out and keep their model.
    network : str, Link or dict, optional
        A :class:`~fedlab.comm.Link` profile name (``"hospital-fibre"``,
        ``"rural-clinic"``, ...; ``"mixed"`` cycles profiles over the sites), a Link, or a
        dict site -> Link; adds simulated seconds per round (``sim_s``) and so far
        (``sim_total_s``) and the slowest site (``straggler``) to ``History.rounds``.
        FedAsync and FedBuff need one: they run on its clock (``rounds`` then counts
        the server's model versions).
    availability : str, Availability or dict, optional
        When sites are online on that clock (:mod:`fedlab.comm.availability`); an
        offline site sits a round out (events record it).
    eval_every, eval_splits : int, tuple of str
        Evaluate every this many rounds (the initial model and the last round always),
        on these splits (``("test",)`` by default).
    """
    cfg, comm, evaluation = resolve(train, comm, evaluation, shorthands)
    strategy, sites = get(strategy), list(sites)
    check_arguments(sites, rounds, resume, run_dir)
    eval_every, eval_splits, clients_per_round = (evaluation.every, evaluation.splits,
                                                  comm.clients_per_round)
    dev, executor = resolve_device(device), executors.get(executor)
    trainers = [Site.pool(sites)] if strategy.pooled else sites
    topo = topologies.for_strategy(strategy, topology)
    links, avail = clock(comm, [t.name for t in trainers], seed)
    topo.check(len(trainers))
    topo.check_strategy(strategy)
    if strategy.communicates:
        participants_per_round(len(trainers), clients_per_round)  # fails early if invalid
    wire = Wire(comm.uplink, comm.downlink, len(trainers), seed, strategy.payload)
    if topo.decentralised:
        wire.check_peers()
    check_secagg_codec(strategy, wire.up)
    spec = ModelSpec.for_sites(model, sites)
    config = run_config(
        strategy=strategy.label, strategy_params=strategy, model=spec.label, rounds=rounds,
        train=cfg, seed=seed, eval_every=eval_every, eval_splits=list(eval_splits),
        sites=[s.name for s in sites], data={s.name: s.fingerprint() for s in sites},
        uplink=str(wire.up), downlink=str(wire.down),
        clients_per_round=clients_per_round,
        network=network_config(links) if links is not None else None,
        **({"availability": availability_config(avail)} if avail else {}),
        **({"topology": topo.name, "topology_params": topo} if topo.decentralised else {}))
    net = spec.build(seed).to(dev)
    strategy = strategy.bind(net, {t.name: t.n_examples for t in trainers})
    initial = clone(net.state_dict())
    ctx = RoundContext(0, strategy, trainers, seed, cfg, spec, str(dev), executor, wire,
                       History(config), [strategy.init_site_state(clone(initial))
                                         for _ in trainers],
                       clients_per_round=clients_per_round, links=links, availability=avail)
    topo.start(ctx, initial)
    pooled = pooled_test(sites, dev) if topo.decentralised and "test" in eval_splits else None

    def evaluate(rnd: int) -> None:
        states = topo.eval_states(ctx, sites)
        evaluate_sites(ctx.history, rnd, net, states, sites, eval_splits, dev,
                       getattr(executor, "score_sites", None))
        if pooled is not None:
            evaluate_pooled(ctx.history, rnd, net, states, sites, pooled)

    run_path, start = (Path(run_dir) if run_dir is not None else None), 1
    if run_path is not None:
        checkpoint.check_config(run_path, config, resume)
        found = checkpoint.load_latest(run_path, len(trainers), dev) if resume else None
        if found is not None:
            ckpt, old, skipped = found
            ctx, start = _restore(ctx, ckpt, old, config), ckpt.round + 1
            ctx.history.events += [{"round": ckpt.round, "site": GLOBAL,
                                    "event": f"resumed past a damaged checkpoint: {note}"}
                                   for note in skipped]
    if start == 1:
        evaluate(0)
    history = ctx.history
    bar = tqdm(range(start, rounds + 1), desc=strategy.name if not topo.decentralised
               else topo.name, disable=not progress, initial=start - 1, total=rounds)
    for rnd in bar:
        t0 = time.perf_counter()
        ctx = replace(ctx, round=rnd, report={}, excluded=set(), trained={},
                      clock=history.rounds[-1].get("sim_total_s", 0.0) if history.rounds else 0.0)
        topo.round(ctx)
        if ctx.trained and ctx.excluded >= set(ctx.trained):
            raise FloatingPointError(
                f"round {rnd}: every site's update was non-finite (NaN or inf) and nothing "
                "trained; check lr, the strategy's parameters and the images for NaN")
        t_train, t1 = time.perf_counter() - t0, time.perf_counter()
        sim = {} if topo.keeps_time else _simulated_time(history, rnd, ctx.trained, links,
                                                          ctx.report.get("wait_s", 0.0))
        if rnd % eval_every == 0 or rnd == rounds:
            evaluate(rnd)
        history.rounds.append({
            "round": rnd, "participants": len(ctx.trained), "excluded": len(ctx.excluded),
            **sim, "train_s": t_train, "eval_s": time.perf_counter() - t1,
            "wall_s": time.perf_counter() - t0, **ctx.report})
        if run_path is not None:
            checkpoint.save_round(run_path, checkpoint.Checkpoint(
                rnd, ctx.global_state, ctx.server_state, ctx.site_states, wire.states,
                ctx.shared, {k: v for k, v in ctx.memory.items() if isinstance(v, int)}),
                history)
        if end_of_round(history, rnd, bar, progress, callbacks):
            break
    bar.close()
    history.final_state = topo.final_state(ctx)
    history.site_states = dict(zip([s.name for s in sites], topo.eval_states(ctx, sites),
                                   strict=True))
    if history.last_round > 0:
        history.warn_if_collapsed()
    return history


def _restore(ctx: RoundContext, ckpt: checkpoint.Checkpoint, history: History,
             config: dict) -> RoundContext:
    """The context of a run continued from its checkpoint."""
    ctx.wire.load(ckpt.codec_states)
    history.config = config
    return replace(ctx, round=ckpt.round, history=history, global_state=ckpt.global_state,
                   server_state=ckpt.server_state, site_states=ckpt.site_states,
                   shared=ckpt.shared, memory=dict(ckpt.memory))


def _simulated_time(history: History, rnd: int, work: dict[str, int], links,
                    wait_s: float) -> dict:
    """The network model's simulated seconds of this round (with ``wait_s``, the time
    waited for a site to come online) and so far, and the slowest site (nothing without
    a network)."""
    if links is None:
        return {}
    sim_s, slowest = round_seconds(history.ledger, rnd, work, links)
    sim_s += wait_s
    total = history.rounds[-1].get("sim_total_s", 0.0) if history.rounds else 0.0
    return {"sim_s": sim_s, "sim_total_s": total + sim_s, "straggler": slowest}
