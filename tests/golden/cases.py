"""The golden matrix: short synthetic runs whose Histories pin the engine's behaviour.

``python -m tests.golden.cases`` (from the repository root) records them as JSON beside
this file; ``tests/test_golden.py`` re-runs every case and compares. Record again only
when a change alters the random streams or the numbers on purpose, in a commit of its
own that says why.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import fedlab as fl

HERE = Path(__file__).parent
ROUNDS = 3


def federation():
    data = fl.data.make_synthetic(n_train=240, n_val=30, n_test=90, seed=7)
    return fl.data.split(data, n_sites=4, scheme=fl.data.Dirichlet(alpha=1.0), seed=7)


TRAIN = {"model": "mlp", "local_steps": 3, "batch_size": 16, "lr": 0.05,
         "optimizer": "sgd", "seed": 3, "progress": False}

STAR_STRATEGIES = ["fedavg", "fedavgm", "fedprox", "scaffold", "fedadam", "fedyogi",
                   "fedadagrad", "fedbn", "finetune", "ditto", "centralized", "local",
                   "median", "trimmedmean", "krum", "multikrum", "normclip"]
PEER_STRATEGIES = ["fedavg", "fedprox", "finetune", "ditto"]
PEER_TOPOLOGIES = ["cyclic", "ring", "swarm"]


def _run(sites, strategy, **kw) -> fl.History:
    if strategy == "fedbn":  # FedBN needs BatchNorm layers
        kw.setdefault("model", "cnn-bn")
    return fl.run(sites, strategy=strategy, rounds=ROUNDS, **{**TRAIN, **kw})


def _resumed(sites) -> fl.History:
    with tempfile.TemporaryDirectory() as tmp:
        fl.run(sites, strategy="fedavg", rounds=2, run_dir=tmp, uplink="topk-ef:0.2", **TRAIN)
        return fl.run(sites, strategy="fedavg", rounds=ROUNDS, run_dir=tmp, resume=True,
                      uplink="topk-ef:0.2", **TRAIN)


def cases() -> dict[str, Callable[[list], fl.History]]:
    """Name -> function of the federation's sites returning a History."""
    out: dict[str, Callable] = {}
    for name in STAR_STRATEGIES:
        out[f"star-{name}"] = lambda s, n=name: _run(s, n)
    for topo in PEER_TOPOLOGIES:
        for name in PEER_STRATEGIES:
            out[f"{topo}-{name}"] = lambda s, n=name, t=topo: _run(s, n, topology=t)
    for name in ("fedavg", "scaffold", "fedbn"):
        out[f"star-{name}-topk-ef"] = lambda s, n=name: _run(s, n, uplink="topk-ef:0.2")
        out[f"star-{name}-sampled"] = lambda s, n=name: _run(s, n, clients_per_round=2)
    out["star-fedavg-topk-ef-sampled"] = lambda s: _run(s, "fedavg", uplink="topk-ef:0.2",
                                                        clients_per_round=2)
    out["star-fedavg-int8-down"] = lambda s: _run(s, "fedavg", downlink="int8",
                                                  network="mixed")
    out["star-dp-central"] = lambda s: _run(
        s, fl.privacy.DP(fl.strategies.FedAvg(), noise_multiplier=0.5, clip=1.0, seed=1))
    out["star-dp-local"] = lambda s: _run(
        s, fl.privacy.DP(fl.strategies.FedAvg(), noise_multiplier=0.5, clip=1.0,
                         mode="local", seed=1))
    out["star-dp-sampled"] = lambda s: _run(
        s, fl.privacy.DP(fl.strategies.FedAvg(), noise_multiplier=0.5, clip=1.0, seed=1),
        clients_per_round=2)
    out["star-secagg"] = lambda s: _run(
        s, fl.privacy.SecAgg(fl.strategies.FedAvg(), sites=tuple(x.name for x in s),
                             threshold=2, dropped=("site-4",), seed=1))
    out["star-byzantine-fedavg"] = lambda s: _run(
        s, fl.attacks.Byzantine(fl.strategies.FedAvg(), sites=("site-2",), scale=3.0))
    out["star-byzantine-median"] = lambda s: _run(
        s, fl.attacks.Byzantine(fl.strategies.Median(), sites=("site-2",), scale=3.0))
    out["star-byzantine-nan"] = lambda s: _run(
        s, fl.attacks.Byzantine(fl.strategies.FedAvg(), sites=("site-2",), kind="nan"))
    out["star-resume-topk-ef"] = _resumed
    for topo in ("star", "cyclic", "swarm"):  # a learning rate that decays every round
        out[f"{topo}-fedavg-lr-decay"] = lambda s, t=topo: _run(s, "fedavg", topology=t,
                                                                lr_decay=0.5)
    out["star-fedavg-epochs-adam"] = lambda s: _run(
        s, "fedavg", local_steps=None, optimizer="adam", lr=0.01, momentum=0.5,
        weight_decay=1e-3, eval_splits=("test", "val"), eval_every=2)
    return out


def record(names: list[str] | None = None) -> None:
    torch.set_num_threads(1)  # as the test suite runs (tests/conftest.py)
    sites = federation()
    for name, fn in cases().items():
        if names and name not in names:
            continue
        t0 = time.perf_counter()
        fn(sites).save(HERE / f"{name}.json")
        print(f"recorded {name} ({time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    record(sys.argv[1:] or None)
