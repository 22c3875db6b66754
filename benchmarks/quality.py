"""Quality check on real data: the default small CNN on PneumoniaMNIST.

Trains the centralised baseline and FedAvg over 5 IID sites with the teaching recipe
(the one the quickstart notebook uses) and compares with the published MedMNIST v2
single-site reference (ResNet-18 at 28×28: test AUC 0.944, ACC 0.854; Yang et al.,
Scientific Data 2023, Table 3).

    python benchmarks/quality.py [--rounds 15] [--out benchmarks/results/quality.md]

Needs pneumoniamnist.npz in the data directory (FEDLAB_DATA or data/).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import fedlab as fl

RECIPE = dict(optimizer="adam", lr=1e-3, batch_size=64, lr_decay=0.7, augment=True)
REFERENCE = {"accuracy": 0.854, "auc": 0.944}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = ap.parse_args()
    data = fl.data.load("pneumoniamnist", download=False)
    sites = fl.data.split(data, n_sites=5, scheme=fl.data.IID(), seed=args.seed)
    rows = []
    for strategy in ("centralized", "fedavg"):
        t0 = time.perf_counter()
        h = fl.run(sites, model="cnn", strategy=strategy, rounds=args.rounds, seed=args.seed,
                   progress=False, **RECIPE)
        s = h.summary()
        rows.append((strategy, s["accuracy"], s["auc"], time.perf_counter() - t0))
    lines = [
        f"Command: `python benchmarks/quality.py --rounds {args.rounds} --seed {args.seed}`",
        f"Recipe: model cnn, {args.rounds} rounds of 1 local epoch, {RECIPE}; 5 IID sites.",
        "",
        "| run | test ACC | test AUC | wall time (s) |",
        "|---|---|---|---|",
        *[f"| {n} | {a:.3f} | {u:.3f} | {t:.0f} |" for n, a, u, t in rows],
        f"| MedMNIST v2 ResNet-18 (28) reference | {REFERENCE['accuracy']:.3f} | "
        f"{REFERENCE['auc']:.3f} | |",
        "",
        f"FedAvg minus centralised accuracy: {100 * (rows[1][1] - rows[0][1]):+.1f} points.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Quality on PneumoniaMNIST\n\n" + text + "\n")
    ok = rows[0][1] >= REFERENCE["accuracy"] and rows[0][2] >= REFERENCE["auc"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
