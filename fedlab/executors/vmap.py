"""The vectorised executor: a round's sites train at once on stacked parameters.

``torch.func`` turns one site's training step into a step of many: the parameters of
every site are stacked along a first dimension, ``vmap(grad(loss))`` gives all their
gradients in one call, and SGD or Adam (:mod:`fedlab.executors.functional`) updates them
together. Sites with less data take fewer steps: a mask keeps a site that has finished
exactly where it stopped, and a short last batch is padded with examples of weight 0.
Each site draws its batches and dropout masks from the same seeded streams as under the
sequential executor, so the result equals the sequential one to float rounding.

Around the vectorised part the strategy's own client half runs as usual, twice per site:
once to learn which local terms it asks for (:class:`~fedlab.strategies.fedprox.Proximal`,
SCAFFOLD's :class:`~fedlab.strategies.scaffold.GradientShift`), and once, after training,
to build its update from the trained weights. A strategy that trains another way (its
own ``site_train``, another hook, two trainings per round) and a model with BatchNorm
running statistics are refused with the reason: use the sequential executor for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..state import clone
from ..strategies.base import ClientContext, Strategy
from ..strategies.fedprox import Proximal
from ..strategies.scaffold import GradientShift
from ..training import batches, derive_seed
from . import functional as fn
from .stacked import train_stacked
from .task import SiteResult, SiteTask, rng_devices

__all__ = ["Vmap", "NotVectorisable"]


class NotVectorisable(ValueError):
    """A strategy, model or setting the vectorised executor cannot run exactly."""


class _Stop(Exception):
    """Ends the first pass of a client half at its call of ``train``."""


class Vmap:
    """Trains all participating sites of a round at once with ``torch.func.vmap``.

    Parameters
    ----------
    max_sites_per_batch : int or None
        Sites vectorised together; more sites run in chunks of this size, which bounds
        the memory. None: 16 on the CPU (measured on 2 cores, 1,000 sites, the small CNN:
        as fast as 64 with the sequential executor's peak memory; 256 is twice as slow),
        1024 on a GPU.
    """

    name = "vmap"

    def __init__(self, max_sites_per_batch: int | None = None) -> None:
        if max_sites_per_batch is not None and (
                not isinstance(max_sites_per_batch, int) or max_sites_per_batch < 1):
            raise ValueError("max_sites_per_batch must be an integer >= 1 or None, got "
                             f"{max_sites_per_batch!r}")
        self.max_sites_per_batch = max_sites_per_batch
        self._nets: dict = {}

    def __repr__(self) -> str:
        return f"Vmap(max_sites_per_batch={self.max_sites_per_batch})"

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult]:
        if not tasks:
            return []
        results: dict[int, SiteResult] = {}
        groups: dict = {}
        for i, t in enumerate(tasks):  # sites that can share one vectorised loop
            groups.setdefault((t.model, t.device, t.config), []).append(i)
        for members in groups.values():
            first = tasks[members[0]]
            size = self.max_sites_per_batch or (1024 if first.device.startswith("cuda")
                                                else 16)
            for start in range(0, len(members), size):
                chunk = members[start:start + size]
                for i, r in zip(chunk, self._run([tasks[i] for i in chunk]), strict=True):
                    results[i] = r
        return [results[i] for i in range(len(tasks))]

    def _network(self, task: SiteTask) -> tuple[nn.Module, nn.Module, list[str]]:
        key = (task.model, task.device)
        if key not in self._nets:
            net = task.model.build().to(task.device)
            why = fn.unsupported_layer(net)
            if why:
                raise NotVectorisable(f"executor='vmap' cannot train this model: {why}; use "
                                      "executor='sequential'")
            self._nets[key] = (net, *fn.vectorisable(net))
        return self._nets[key]

    def _run(self, tasks: list[SiteTask]) -> list[SiteResult]:
        net, twin, drops = self._network(tasks[0])
        plans = [_first_pass(t, net) for t in tasks]
        trained, metrics = _train_together(tasks, plans, twin, drops)
        return [_second_pass(t, net, p, w, m)
                for t, p, w, m in zip(tasks, plans, trained, metrics, strict=True)]


def _check_strategy(strategy: Strategy) -> None:
    if type(strategy).site_train is not Strategy.site_train:
        raise NotVectorisable(
            f"executor='vmap' cannot run {type(strategy).__name__}: it trains with its own "
            "site_train (phases, a second model, its own loss); use executor='sequential'")


def _context(task: SiteTask, net: nn.Module, site_state: dict, train) -> ClientContext:
    return ClientContext(task.site.name, task.round, net, task.received, site_state,
                         task.config, task.site.n_examples, train)


def _first_pass(task: SiteTask, net: nn.Module) -> dict:
    """Run the client half up to its ``train`` call: the start state and the hooks."""
    _check_strategy(task.strategy)
    plan: dict = {}

    def record(extra_loss=None, after_backward=None, **hooks):
        if hooks or not isinstance(extra_loss, (Proximal, type(None))) or not isinstance(
                after_backward, (GradientShift, type(None))):
            given = [type(h).__name__ for h in (extra_loss, after_backward, *hooks.values())
                     if h is not None]
            raise NotVectorisable(
                f"executor='vmap' cannot run {type(task.strategy).__name__}: its local "
                f"training asks for {given}, and only FedProx's proximal term and SCAFFOLD's "
                "correction are vectorised; use executor='sequential'")
        plan.update(extra_loss=extra_loss, after_backward=after_backward)
        raise _Stop

    site_state = clone(task.site_state)
    with torch.random.fork_rng(devices=rng_devices(torch.device(task.device))), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the second pass warns, once
        start = task.strategy.local_start(task.received, site_state)
        net.load_state_dict(start)
        # no copy: the start is what the site received (FedAvg: the one global state)
        plan["start"] = {k: v.detach() for k, v in start.items()}
        plan["trainable"] = [n for n, p in net.named_parameters() if p.requires_grad]
        try:
            task.strategy.client_update(_context(task, net, site_state, record))
        except _Stop:
            return plan
    raise NotVectorisable(f"executor='vmap' cannot run {type(task.strategy).__name__}: its "
                          "client half does not train; use executor='sequential'")


def _second_pass(task: SiteTask, net: nn.Module, plan: dict, weights: dict,
                 metrics: dict) -> SiteResult:
    """Run the client half again with ``train`` handing over the trained weights."""
    calls = []

    def replay(**hooks):
        if calls:
            raise NotVectorisable(f"executor='vmap' cannot run {type(task.strategy).__name__}:"
                                  " it trains twice in a round; use executor='sequential'")
        calls.append(1)
        net.load_state_dict({**plan["start"], **weights})
        return dict(metrics)

    site_state = clone(task.site_state)
    with torch.random.fork_rng(devices=rng_devices(torch.device(task.device))):
        net.load_state_dict(task.strategy.local_start(task.received, site_state))
        update = task.strategy.client_update(_context(task, net, site_state, replay))
    return SiteResult(update, site_state)


def _schedules(tasks: list[SiteTask]) -> list[list[torch.Tensor]]:
    """Each site's mini-batches, drawn as ``train_epochs`` draws them."""
    config, out = tasks[0].config, []
    for t in tasks:
        gen = torch.Generator().manual_seed(derive_seed(t.seed, t.round, t.index, 1))
        n, steps = t.site.n_examples, []
        if n:
            limit = config.steps
            while True:
                steps += list(batches(n, config.batch_size, gen))
                if limit is None and len(steps) >= config.epochs * -(-n // config.batch_size):
                    break
                if limit is not None and len(steps) >= limit:
                    steps = steps[:limit]
                    break
        out.append(steps)
    return out


def _train_together(tasks: list[SiteTask], plans: list[dict], twin: nn.Module,
                    drops: list[str]) -> tuple[list[dict], list[dict]]:
    """Check the chunk's settings, then train it (:func:`~.stacked.train_stacked`)."""
    config = tasks[0].config
    if config.augment:
        raise NotVectorisable("executor='vmap' does not vectorise augment=True (each site "
                              "shifts its batches by its own offsets); use "
                              "executor='sequential'")
    if any(p["trainable"] != plans[0]["trainable"] for p in plans):
        raise NotVectorisable("executor='vmap' needs the same trainable parameters at every "
                              "site of a round; use executor='sequential'")
    for t in tasks:
        y = t.site.split("train").labels
        if y.ndim != 1 or y.dtype.kind == "f":
            raise NotVectorisable("executor='vmap' trains classifiers (one class label per "
                                  f"image); site {t.site.name!r} has targets of shape "
                                  f"{tuple(y.shape)}; use executor='sequential'")
    return train_stacked(tasks, plans, twin, drops, _schedules(tasks))
