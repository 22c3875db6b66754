"""Simulation overhead: FedAvg over 5 sites against a plain PyTorch loop.

Both train the same model from the same initial weights on the same samples for the
same number of epochs, with the same batch size and optimiser, and both evaluate the
test set before and after training. The FedAvg run adds what the simulation costs:
loading and copying states, aggregation, the ledger, per-site evaluation.

    python benchmarks/overhead.py [--epochs 5] [--repeats 3]

Prints both wall times and their ratio (target: FedAvg / plain <= 1.05), median of
the repeats, the two measured alternately so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import fedlab as fl
from fedlab.training import TrainConfig, batches, predict


def plain_loop(model, x, y, x_test, y_test, cfg: TrainConfig, epochs: int, seed: int) -> float:
    """The reference: one model, one optimiser, mini-batch passes over all the data."""
    t0 = time.perf_counter()
    predict(model, x_test, y_test)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        opt = cfg.make_optimizer(model.parameters())  # FedAvg also re-creates it per round
        for idx in batches(len(y), cfg.batch_size, gen):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    predict(model, x_test, y_test)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        data = fl.data.load("pneumoniamnist", download=False)
    except FileNotFoundError:
        data = fl.data.make_synthetic(n_train=4708, n_val=524, n_test=624, seed=0)
    sites = fl.data.split(data, args.sites, seed=0)
    pooled = sites.pooled()
    x, y = pooled.tensors("train")
    xt, yt = pooled.tensors("test")
    train = dict(optimizer="adam", lr=1e-3, batch_size=64)
    cfg = TrainConfig(**train)
    torch.manual_seed(0)
    init = fl.models.create_model("cnn")
    plain, fed = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(copy.deepcopy(init), x, y, xt, yt, cfg, args.epochs, r))
        t0 = time.perf_counter()
        fl.run(sites, model=init, strategy="fedavg", rounds=args.epochs, local_epochs=1,
               eval_every=args.epochs, progress=False, seed=r, **train)
        fed.append(time.perf_counter() - t0)
    p, f = statistics.median(plain), statistics.median(fed)
    n = len(y) * args.epochs
    print(f"dataset {data.name}: {len(y)} training images, {args.sites} sites, "
          f"{args.epochs} epochs, {args.threads} threads, median of {args.repeats}")
    print(f"plain PyTorch loop : {p:7.2f} s  ({n / p:6.0f} images/s)")
    print(f"fedlab FedAvg      : {f:7.2f} s  ({n / f:6.0f} images/s)")
    print(f"ratio FedAvg/plain : {f / p:7.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
