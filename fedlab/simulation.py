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
from .history import GLOBAL, History
from .metrics import classification_metrics
from .models import create_model, state_bytes
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
        executor: SequentialExecutor | None = None) -> History:
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
    config = json.loads(json.dumps({
        "strategy": strategy.name, "strategy_params": asdict(strategy),
        "model": model if isinstance(model, str) else type(model).__name__,
        "rounds": rounds, "train": asdict(cfg), "seed": seed, "eval_every": eval_every,
        "eval_splits": list(eval_splits), "sites": [s.name for s in sites],
    }, default=str))
    trainers = [Site.pool(sites)] if strategy.pooled else sites
    net = _build_model(model, sites, seed).to(dev)
    strategy = strategy.setup(net)
    global_state = _clone(net.state_dict())
    server_state = strategy.init_server_state(global_state)
    site_states: list[State] = [strategy.init_site_state(_clone(global_state))
                                for _ in trainers]
    history, start = History(config), 1
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None:
        checkpoint.check_config(run_path, config, resume)
        found = checkpoint.load_latest(run_path, len(trainers), dev) if resume else None
        if found is not None:
            last, global_state, server_state, site_states, history = found
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
        received = strategy.message_down(global_state, server_state)

        def local(i: int, rnd: int = rnd, received: State = received) -> Update:
            return _local_round(strategy, net, trainers[i], i, rnd, received, site_states[i],
                                cfg.for_round(rnd), seed, dev)

        updates = executor.map(local, range(len(trainers)))
        t_train = time.perf_counter() - t0
        if strategy.communicates:
            down = state_bytes(received)
            for u in updates:
                history.log_message(rnd, u.site, "down", down)
                history.log_message(rnd, u.site, "up", state_bytes(u.payload))
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
        t1 = time.perf_counter()
        if rnd % eval_every == 0 or rnd == rounds:
            _evaluate(history, rnd, net, strategy, global_state, site_states, sites, trainers,
                      eval_splits, dev)
        history.rounds.append({
            "round": rnd, "participants": len(updates), "excluded": len(updates) - len(good),
            "train_s": t_train, "eval_s": time.perf_counter() - t1,
            "wall_s": time.perf_counter() - t0,
            **strategy.round_report(rnd, server_state),
        })
        if run_path is not None:
            checkpoint.save_round(run_path, rnd, global_state, server_state, site_states, history)
        if progress and history.metrics and history.metrics[-1]["round"] == rnd:
            bar.set_postfix(acc=f"{history.final('accuracy'):.3f}")
        if any(cb(history, rnd) is True for cb in callbacks):
            history.events.append({"round": rnd, "site": GLOBAL, "event": "stopped by callback"})
            break
    bar.close()
    history.final_state = global_state
    own = {t.name: st for t, st in zip(trainers, site_states, strict=True)}
    history.site_states = {s.name: strategy.eval_state(global_state, own.get(s.name, {}))
                           for s in sites}
    return history


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
                                classification_metrics(p, y_np, site_loss))
            if len(y_np):
                probs.append(p)
                labels.append(y_np)
                loss += site_loss
        history.log_metrics(rnd, GLOBAL, split, classification_metrics(
            np.concatenate(probs), np.concatenate(labels), loss))
