"""One site's local work as a value: what an executor runs, in any process.

:class:`SiteTask` holds everything a site needs for one round — the strategy (a frozen
dataclass), how to build the network (:class:`~fedlab.models.ModelSpec`), the site with
its data, what it received, its own persistent state, the round's training settings
and the seeds — and nothing shared with the run loop. :func:`run_site_task` is pure: it
returns the site's update and its *new* state instead of editing anything, draws its
randomness from generators derived from ``(seed, round, site)``, and leaves the
caller's global random state as it was. So a task can be pickled to another process
(Ray), run in any order, or batched (a vectorised executor), and the result is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models import ModelSpec
from ..sites import Site
from ..state import clone
from ..strategies.base import ClientContext, State, Strategy, Update
from ..training import TrainConfig, derive_seed

__all__ = ["SiteTask", "SiteResult", "rng_devices", "run_site_task"]


@dataclass
class SiteTask:
    """One site's local round (see the module docstring).

    Parameters
    ----------
    strategy : Strategy
        The run's (bound) strategy, whose client half runs at the site.
    model : ModelSpec
        How to build the network.
    site : Site
        The site, with its data.
    index : int
        The site's position in the run (it seeds the site's streams).
    round : int
        The current round.
    seed : int
        The run's seed (a topology that visits a site twice in a round passes a derived
        one).
    received : dict of tensors
        What the site received this round (:meth:`Strategy.local_start` makes its start).
    site_state : dict
        The site's own persistent state before the round (not changed by the task).
    config : TrainConfig
        The training settings of this round (learning rate decayed).
    device : str
        Where to train, e.g. ``"cpu"`` or ``"cuda:0"``.
    """

    strategy: Strategy
    model: ModelSpec
    site: Site
    index: int
    round: int
    seed: int
    received: State
    site_state: State
    config: TrainConfig
    device: str = "cpu"


@dataclass
class SiteResult:
    """What a site hands back: its update (to send) and its new own state (to keep).

    Parameters
    ----------
    update : Update
        The site's reply to the server or its peers.
    site_state : dict
        The site's own persistent state after the round.
    """

    update: Update
    site_state: State


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose random state ``fork_rng`` saves for ``device`` (none on CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def run_site_task(task: SiteTask, net: nn.Module | None = None) -> SiteResult:
    """Run the strategy's client half at the task's site; ``net`` (a network built from
    ``task.model``, on ``task.device``) is reused when given, else one is built."""
    dev = torch.device(task.device)
    if net is None:
        net = task.model.build().to(dev)
    site_state = clone(task.site_state)  # the caller's stays as it was
    with torch.random.fork_rng(devices=rng_devices(dev)):
        torch.manual_seed(derive_seed(task.seed, task.round, task.index, 0))  # dropout
        generator = torch.Generator().manual_seed(derive_seed(task.seed, task.round,
                                                              task.index, 1))
        strategy = task.strategy
        net.load_state_dict(strategy.local_start(task.received, site_state))
        x, y = task.site.tensors("train", dev)

        def train(**hooks) -> dict[str, float]:
            return strategy.site_train(net, x, y, task.config, generator, **hooks)

        ctx = ClientContext(task.site.name, task.round, net, task.received, site_state,
                            task.config, task.site.n_examples, train)
        update = strategy.client_update(ctx)
    return SiteResult(update, site_state)
