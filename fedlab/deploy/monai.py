"""A fedlab strategy's client half as a ``monai.fl`` ``ClientAlgo``.

NVIDIA FLARE runs MONAI training at a site through MONAI's FL client contract
(``monai.fl.client.ClientAlgo``): ``initialize``, then per round ``train`` with the
global weights in an ``ExchangeObject`` and ``get_weights`` for the site's update, and
``evaluate``. :class:`MonaiClient` fulfils that contract with
:func:`fedlab.executors.run_site_task` — the same site task :func:`fedlab.run` runs,
with the same per-site random streams — so a strategy prototyped in a notebook runs at
a FLARE site unchanged, and fedlab's server half (or FLARE's) aggregates what it
returns. The site's own state (SCAFFOLD's control variate, ...) stays in the client.

What travels: ``ExchangeObject.weights`` holds the strategy's message down and its
update (``weight_type`` ``WEIGHTS`` for a strategy that sends weights, ``WEIGHT_DIFF``
for changes), ``statistics`` the training examples and steps, ``metrics`` the local
training numbers.
"""

from __future__ import annotations

from typing import Any

from monai.fl.client import ClientAlgo
from monai.fl.utils.constants import FlStatistics, WeightType
from monai.fl.utils.exchange_object import ExchangeObject

from ..executors.task import SiteTask, run_site_task
from ..models import ModelSpec
from ..sites import Site
from ..state import clone
from ..strategies.base import Strategy, Update
from ..training import TrainConfig

__all__ = ["MonaiClient", "update_of"]


class MonaiClient(ClientAlgo):
    """Runs ``strategy``'s client half at ``site`` under MONAI's FL client API.

    Parameters
    ----------
    site : Site
        The site's data (at the site).
    strategy : Strategy
        The run's strategy (unbound: it is bound in :meth:`initialize` as the server
        binds it).
    model : str
        The model's name (see :func:`fedlab.create_model`).
    examples : dict
        Site name -> training examples of every site of the federation.
    train : TrainConfig, optional
        Local training settings (the learning rate decays per round as in a run).
    index : int
        The site's position in the federation (it seeds the site's streams).
    seed : int
        The run's seed.
    """

    def __init__(self, site: Site, strategy: Strategy, model: str, examples: dict[str, int],
                 train: TrainConfig | None = None, index: int = 0, seed: int = 0) -> None:
        if site.name not in examples:
            raise ValueError(f"examples must include site {site.name!r}, got {sorted(examples)}")
        self.site, self.strategy, self.model, self.examples = site, strategy, model, examples
        self.config, self.index, self.seed = train or TrainConfig(), int(index), int(seed)
        self.round, self.net, self.spec, self.bound = 0, None, None, None
        self.site_state: dict = {}
        self.update: Update | None = None

    def initialize(self, extra: dict | None = None) -> None:
        """Build the network and bind the strategy to the federation, as the server does."""
        self.spec = ModelSpec.for_sites(self.model, [self.site])
        self.net = self.spec.build(self.seed)
        self.bound = self.strategy.bind(self.net, dict(self.examples))
        self.site_state = self.bound.init_site_state(clone(self.net.state_dict()))

    def _ready(self) -> None:
        if self.bound is None:
            raise RuntimeError("call initialize() before train(), get_weights() or evaluate()")

    def train(self, data: ExchangeObject, extra: dict | None = None) -> None:
        """One round of local work from what the server sent (``data.weights``)."""
        self._ready()
        if not isinstance(data, ExchangeObject) or data.weights is None:
            raise ValueError("train needs an ExchangeObject with the server's weights")
        self.round += 1
        task = SiteTask(self.bound, self.spec, self.site, self.index, self.round, self.seed,
                        dict(data.weights), self.site_state,
                        self.config.for_round(self.round), "cpu")
        result = run_site_task(task, self.net)
        self.site_state, self.update = result.site_state, result.update

    def get_weights(self, extra: dict | None = None) -> ExchangeObject:
        """The site's update of the last round (its initial weights before any)."""
        self._ready()
        if self.update is None:
            return ExchangeObject(weights=clone(self.net.state_dict()),
                                  weight_type=WeightType.WEIGHTS)
        kind = WeightType.WEIGHTS if self.bound.payload == "weights" else WeightType.WEIGHT_DIFF
        return ExchangeObject(
            weights=self.update.payload, weight_type=kind, metrics=dict(self.update.metrics),
            statistics={FlStatistics.NUM_EXECUTED_ITERATIONS:
                        int(self.update.metrics.get("steps", 0)),
                        FlStatistics.TOTAL_DATA: int(self.update.n_examples)})

    def evaluate(self, data: ExchangeObject, extra: dict | None = None) -> ExchangeObject:
        """``data.weights`` scored on the site's test split (``extra["split"]`` to choose)."""
        from ..engine.evaluate import score_sites

        self._ready()
        split = (extra or {}).get("split", "test")
        (_, metrics), _ = score_sites(self.net, [dict(data.weights)], [self.site], split, "cpu")
        return ExchangeObject(metrics=metrics)

    def abort(self, extra: dict | None = None) -> None:
        """Nothing runs in the background: there is nothing to stop."""

    def finalize(self, extra: dict | None = None) -> None:
        self.update = None


def update_of(site: str, reply: ExchangeObject) -> Update:
    """The :class:`Update` of a :class:`MonaiClient`'s ``get_weights`` reply (the server
    half's input)."""
    stats: dict[str, Any] = reply.statistics or {}
    return Update(site, dict(reply.weights), int(stats.get(FlStatistics.TOTAL_DATA, 0)),
                  dict(reply.metrics or {}))

