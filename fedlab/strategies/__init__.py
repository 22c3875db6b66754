"""FL algorithms: one module each, client half beside server half.

Every strategy is reachable by its lowercase ``name`` (``get("fedavg")``), which is
also how the CLI selects it.
"""

from .aggregate import is_finite, weighted_average
from .base import ClientContext, State, Strategy, Update
from .baselines import Centralized, LocalOnly
from .fedavg import FedAvg

__all__ = [
    "STRATEGIES", "Centralized", "ClientContext", "FedAvg", "LocalOnly", "State", "Strategy",
    "Update", "get", "is_finite", "weighted_average",
]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, Centralized, LocalOnly)
}


def get(name: str | Strategy, **params) -> Strategy:
    """A strategy instance from its name (``"fedavg"``, ``"centralized"``, ``"local"``)."""
    if isinstance(name, Strategy):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    aliases = {"centralised": "centralized", "localonly": "local", "pooled": "centralized"}
    key = aliases.get(key, key)
    if key not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    return STRATEGIES[key](**params)
