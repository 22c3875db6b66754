"""FL algorithms: one module each, client half beside server half.

Every strategy is reachable by its lowercase ``name`` (``get("fedprox", mu=0.1)``), which
is also how the CLI selects it.
"""

from .aggregate import is_finite, weighted_average
from .base import ClientContext, State, Strategy, Update
from .baselines import Centralized, LocalOnly
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedbn import FedBN, norm_keys
from .fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from .fedprox import FedProx, proximal_term
from .personalized import Ditto, FineTuned
from .robust import Krum, Median, MultiKrum, NormClip, Robust, TrimmedMean
from .scaffold import Scaffold
from .wrapper import Wrapper

__all__ = [
    "STRATEGIES", "Centralized", "ClientContext", "Ditto", "FedAdagrad", "FedAdam", "FedAvg",
    "FedAvgM", "FedBN", "FedOpt", "FedProx", "FedYogi", "FineTuned", "Krum", "LocalOnly",
    "Median", "MultiKrum", "NormClip", "Robust", "Scaffold", "State", "Strategy",
    "TrimmedMean", "Update", "Wrapper", "get", "is_finite", "norm_keys", "proximal_term",
    "weighted_average",
]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedAvgM, FedProx, Scaffold, FedOpt, FedAdam, FedYogi,
                              FedAdagrad, FedBN, FineTuned, Ditto, Centralized, LocalOnly,
                              Median, TrimmedMean, Krum, MultiKrum, NormClip)
}

_ALIASES = {"centralised": "centralized", "localonly": "local", "pooled": "centralized",
            "finetuned": "finetune", "fedavgft": "finetune", "trimmed": "trimmedmean",
            "clip": "normclip", "clipping": "normclip"}


def get(name: str | Strategy, **params) -> Strategy:
    """A strategy instance from its name (see ``STRATEGIES``) and hyper-parameters."""
    if isinstance(name, Strategy):
        return name
    key = str(name).lower().replace("-", "").replace("_", "").replace("+", "")
    key = _ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    return STRATEGIES[key](**params)
