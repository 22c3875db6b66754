"""fedlab: a notebook-first workbench for federated learning in medical imaging.

>>> import fedlab as fl
>>> data = fl.data.load("pneumoniamnist")
>>> sites = fl.data.split(data, n_sites=5, scheme=fl.data.Dirichlet(alpha=0.5), seed=0)
>>> history = fl.run(sites, model="cnn", strategy="fedavg", rounds=10, seed=0)
>>> history.summary()
"""

from . import (
    attacks,
    claims,
    comm,
    data,
    executors,
    metrics,
    models,
    privacy,
    strategies,
    topologies,
)
from .engine.config import Comm, Eval
from .evaluation import compare, cross_site, evaluate, evaluate_federated
from .history import History
from .simulation import run
from .sites import Federation, Site
from .sweeps import sweep, sweep_summary
from .training import Train

__version__ = "0.1.0"

__all__ = ["Comm", "Eval", "Federation", "History", "Site", "Train", "attacks", "claims",
           "comm", "compare", "cross_site", "data", "deploy", "evaluate", "evaluate_federated",
           "executors", "explain", "imaging", "metrics", "models", "privacy", "reconstruction",
           "run", "segmentation", "strategies", "sweep", "sweep_summary", "topologies", "viz",
           "__version__"]


def __getattr__(name: str):
    # plotly-based modules import on first use, so `import fedlab` stays fast.
    if name in ("viz", "widgets", "segmentation", "reconstruction", "explain", "imaging",
                "deploy"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fedlab' has no attribute {name!r}")
