"""The vectorised training loop: every site of a chunk takes its step ``t`` at once.

Per step: gather each site's mini-batch (padded to the longest with examples of weight
0), draw each site's dropout masks from its own stream, take ``vmap(grad(loss))`` over
the stacked parameters, apply SCAFFOLD's shift, and step the optimiser of the sites that
still have a step to take (:mod:`fedlab.executors.functional`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..training import derive_seed
from . import functional as fn
from .task import SiteTask

__all__ = ["train_stacked"]


def _stack(values: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.stack([v.to(device) for v in values])


def _terms(plans: list[dict], names: list[str], device: torch.device):
    """Per site: FedProx's ``mu`` and anchor, SCAFFOLD's shift (zeros where absent)."""
    mus, refs, shifts = [], {k: [] for k in names}, {k: [] for k in names}
    for p in plans:
        prox, shift = p["extra_loss"], p["after_backward"]
        mus.append(float(prox.mu) if prox is not None else 0.0)
        for k in names:
            start = p["start"][k]
            refs[k].append(prox.reference.get(k, start) if prox is not None else start)
            s = shift.shift.get(k) if shift is not None else None
            shifts[k].append(s if s is not None else torch.zeros_like(start))
    has_prox = any(p["extra_loss"] is not None for p in plans)
    has_shift = any(p["after_backward"] is not None for p in plans)
    return (torch.tensor(mus, device=device), {k: _stack(v, device) for k, v in refs.items()},
            has_prox, {k: _stack(v, device) for k, v in shifts.items()} if has_shift else None)


def _mask(batch: int, shape: tuple, p: float, generator: torch.Generator) -> torch.Tensor:
    """One dropout mask, drawn as ``F.dropout`` draws it on the CPU (nothing when
    ``p`` is 0: dropout then returns its input without drawing)."""
    if p == 0:
        return torch.ones(batch, *shape)
    if p == 1:
        return torch.zeros(batch, *shape)
    return torch.empty(batch, *shape).bernoulli_(1 - p, generator=generator).div_(1 - p)


def train_stacked(tasks: list[SiteTask], plans: list[dict], twin: nn.Module, drops: list[str],
                  schedules: list[list[torch.Tensor]]) -> tuple[list[dict], list[dict]]:
    """Train the chunk; per site its trained parameters and its ``train_epochs`` metrics."""
    config, dev = tasks[0].config, torch.device(tasks[0].device)
    names = plans[0]["trainable"]
    params = {k: _stack([p["start"][k] for p in plans], dev) for k in names}
    consts = {k: _stack([p["start"][k] for p in plans], dev)
              for k in plans[0]["start"] if k not in params}
    data = [t.site.tensors("train", dev) for t in tasks]
    offsets = torch.tensor([0] + [len(y) for _, y in data]).cumsum(0)[:-1].tolist()
    x_all, y_all = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
    mus, refs, has_prox, shifts = _terms(plans, names, dev)
    width = max((len(b) for s in schedules for b in s[:1]), default=1)
    gens = [torch.Generator().manual_seed(derive_seed(t.seed, t.round, t.index, 0))
            for t in tasks]
    shapes = fn.dropout_shapes(twin, drops, x_all[:1]) if drops and len(x_all) else {}
    rates = {n: dict(twin.named_modules())[n].p for n in drops}

    def loss(p, c, m, xb, yb, wb, mu, ref):
        value = fn.weighted_ce(functional_call(twin, {**p, **c, **m}, (xb,)), yb, wb)
        if has_prox:
            value = value + 0.5 * mu * sum(((p[k] - ref[k]) ** 2).sum() for k in ref)
        return value, value.detach()

    step_all = vmap(grad(loss, has_aux=True))
    state: dict = {}
    total = torch.zeros(len(tasks), device=dev)
    counts = torch.tensor([len(s) for s in schedules], device=dev)
    for t in range(max(len(s) for s in schedules)):
        active_list = [t < len(s) for s in schedules]
        active = torch.tensor(active_list, device=dev)
        index = torch.zeros(len(tasks), width, dtype=torch.long)
        weight = torch.zeros(len(tasks), width)
        masks = {f"{n}.mask": torch.zeros(len(tasks), width, *shapes[n]) for n in drops}
        for i, s in enumerate(schedules):
            if not active_list[i]:
                continue
            b = s[t]
            index[i, :len(b)] = b + offsets[i]
            weight[i, :len(b)] = 1.0
            for n in drops:  # as the sequential executor's dropout draws them
                masks[f"{n}.mask"][i, :len(b)] = _mask(len(b), shapes[n], rates[n], gens[i])
        index, weight = index.to(dev), weight.to(dev)
        masks = {k: v.to(dev) for k, v in masks.items()}
        grads, values = step_all(params, consts, masks, x_all[index], y_all[index], weight,
                                 mus, refs)
        if shifts is not None:
            grads = {k: g + shifts[k] for k, g in grads.items()}
        if config.optimizer == "adam":
            params, state = fn.adam_step(params, grads, state, active, t + 1, config.lr,
                                         config.weight_decay)
        else:
            params, state = fn.sgd_step(params, grads, state, active, config.lr,
                                        config.momentum, config.weight_decay)
        total = total + torch.where(active, values, torch.zeros_like(values))
    trained = [{k: v[i].detach().clone() for k, v in params.items()} for i in range(len(tasks))]
    metrics = [{"train_loss": float(total[i]) / max(int(counts[i]), 1),
                "steps": float(counts[i])} for i in range(len(tasks))]
    return trained, metrics
