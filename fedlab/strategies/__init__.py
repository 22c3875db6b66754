"""FL algorithms: one module each, client half beside server half.

Every strategy is reachable by its lowercase ``name`` (``get("fedprox", mu=0.1)``), which
is also how the CLI selects it. The robust rules (``RULES``: median, trimmedmean, krum,
multikrum, normclip) fill any weight-sending strategy's ``combine`` slot; by name they
give FedAvg with that rule (``get("krum", n_byzantine=2)``).
"""

from dataclasses import replace

from .aggregate import is_finite, weighted_average
from .apfl import APFL
from .asynchronous import FedAsync, FedBuff, staleness_weight
from .base import ClientContext, State, Strategy, Update
from .baselines import Centralized, LocalOnly
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedbn import FedBN, norm_keys
from .feddyn import FedDyn
from .fedmd import FedMD, PublicSet
from .fednova import FedNova
from .fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from .fedprox import FedProx, proximal_term
from .fedrep import FedBABU, FedRep
from .ifca import IFCA
from .moon import MOON
from .personalized import Ditto, FineTuned
from .robust import RULES, Krum, Median, MultiKrum, NormClip, Rule, TrimmedMean, get_rule
from .scaffold import Scaffold
from .sharing import FedPer, LGFedAvg, PartialSharing, head_keys, shared_keys
from .wrapper import Wrapper

__all__ = [
    "APFL", "FedBABU", "FedDyn", "FedMD", "FedNova", "FedPer", "FedRep", "IFCA", "LGFedAvg",
    "MOON", "PartialSharing", "PublicSet", "head_keys", "shared_keys",
    "STRATEGIES", "Centralized", "ClientContext", "Ditto", "FedAdagrad", "FedAdam",
    "FedAsync", "FedAvg", "FedBuff",
    "FedAvgM", "FedBN", "FedOpt", "FedProx", "FedYogi", "FineTuned", "Krum", "LocalOnly",
    "Median", "MultiKrum", "NormClip", "RULES", "Rule", "Scaffold", "State", "Strategy",
    "TrimmedMean", "Update", "Wrapper", "get", "names", "is_finite", "norm_keys", "proximal_term",
    "get_rule", "weighted_average", "staleness_weight",
]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedAvgM, FedProx, Scaffold, FedOpt, FedAdam, FedYogi,
                              FedAdagrad, FedBN, FineTuned, Ditto, Centralized, LocalOnly,
                              FedAsync, FedBuff, FedPer, FedRep, LGFedAvg, FedBABU, APFL, MOON,
                              FedNova, FedDyn, IFCA, FedMD)
}

_ALIASES = {"centralised": "centralized", "localonly": "local", "pooled": "centralized",
            "finetuned": "finetune", "fedavgft": "finetune", "trimmed": "trimmedmean",
            "clip": "normclip", "clipping": "normclip", "fedmedian": "median",
            "lg": "lgfedavg", "clustered": "ifca"}


def names() -> list[str]:
    """Every name :func:`get` (and the CLI's ``--strategy``) accepts: the strategies and
    the robust rules."""
    return sorted(set(STRATEGIES) | set(RULES))


def get(name: str | Strategy | Rule, **params) -> Strategy:
    """A strategy instance from its name (see :func:`names`) and hyper-parameters.

    A robust rule's name or a :class:`Rule` gives FedAvg with that rule in its
    ``combine`` slot; ``base=`` names another strategy for it (``get("median",
    base="fedprox")``). The remaining ``params`` go to the rule.
    """
    if isinstance(name, Strategy):
        return name
    if isinstance(name, Rule):
        return FedAvg(combine=name)
    key = str(name).lower().replace("-", "").replace("_", "").replace("+", "")
    key = _ALIASES.get(key, key)
    if key in RULES:
        base = get(params.pop("base", "fedavg"))
        return replace(base, combine=RULES[key](**params))
    if key not in STRATEGIES:
        raise ValueError(f"strategy must be one of {names()}, got {name!r}")
    return STRATEGIES[key](**params)
