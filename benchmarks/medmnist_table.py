"""FL strategies on MedMNIST under label skew: a seeded, regenerable table.

PneumoniaMNIST and BreastMNIST × {IID, Dirichlet 1.0, 0.3, 0.1} × {centralised,
local-only, FedAvg, FedProx, SCAFFOLD, FedAdam, FedBN, fine-tuned FedAvg, FedPer, FedRep,
LG-FedAvg, FedBABU, APFL, MOON, FedNova, FedDyn, IFCA, FedMD} × 3 seeds;
mean ± std over seeds of the final test accuracy and AUC of the global row, and of the
mean and worst per-site accuracy.

    python benchmarks/medmnist_table.py            # the full table (about an hour, 1 core)
    python benchmarks/medmnist_table.py --quick    # a few seconds: checks the script

The table is one ``fl.sweep`` (dataset × partition × strategy × seed) over the sweep
cache ``results/medmnist/runs/`` (git-ignored). Its source of record stays the JSON-lines
file ``results/medmnist.jsonl``: its rows are imported into the sweep cache on first
use (no run is repeated), every finished run is appended to it, and the Markdown table
is rebuilt from it. An interrupted benchmark resumes where it stopped.

How to read the "global" numbers: for shared-model strategies (FedAvg, FedProx,
SCAFFOLD, FedAdam, MOON, FedNova, FedDyn, centralised) they score the one global model
on the union of the sites' test splits (the official test set). For personalised ones
(local-only, FedBN, fine-tuned, FedPer, FedRep, LG-FedAvg, FedBABU, APFL, IFCA's
clusters, FedMD) each site's own model scores that site's test patients, pooled.
FedMD's public set is 500 images of the dataset's validation split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

import fedlab as fl
from fedlab.runspec import describe, resolve_options
from fedlab.sweeps import load_record, store

RESULTS = Path(__file__).resolve().parent / "results"
PARTITIONS = {"iid": None, "dir1.0": 1.0, "dir0.3": 0.3, "dir0.1": 0.1}
STRATEGIES = ("centralized", "local", "fedavg", "fedprox", "scaffold", "fedadam", "fedbn",
              "finetune", "fedper", "fedrep", "lgfedavg", "fedbabu", "apfl", "moon",
              "fednova", "feddyn", "ifca", "fedmd")
# One model and one local optimiser for every strategy: cnn-bn because FedBN needs
# BatchNorm layers, plain SGD because SCAFFOLD's correction assumes it.
TRAIN = dict(model="cnn-bn", optimizer="sgd", lr=0.05, momentum=0.0, batch_size=32,
             local_epochs=1)
# BreastMNIST has 546 training images: more rounds (with a slower decay) for as many steps.
ROUNDS = {"pneumoniamnist": 10, "breastmnist": 20}
LR_DECAY = {"pneumoniamnist": 0.8, "breastmnist": 0.9}
METRICS = ("accuracy", "auc", "site_mean", "site_worst")
_KEYS = ("dataset", "partition", "strategy", "seed", "rounds", "sites")


def _key(d: dict) -> str:
    return json.dumps({k: d[k] for k in _KEYS}, sort_keys=True)


def _partition(name: str) -> dict:
    alpha = PARTITIONS[name]
    return {"partition": "iid"} if alpha is None else {"partition": "dirichlet", "alpha": alpha}


def _dataset(name: str, rounds: int | None) -> dict:
    return {"dataset": name, "rounds": rounds or ROUNDS.get(name, 10),
            "lr_decay": LR_DECAY.get(name, 0.8)}


def description(row: dict) -> dict:
    """The sweep's full run description of a table row (its dataset, partition,
    strategy, seed, rounds and sites); FedMD's public set is 500 validation images."""
    spec = {**TRAIN, **_dataset(row["dataset"], row["rounds"]), **_partition(row["partition"]),
            "strategy": row["strategy"], "seed": row["seed"], "sites": row["sites"]}
    return describe(resolve_options(spec))


def import_rows(rows: list[dict], folder: Path) -> int:
    """Store the finished rows of the JSON-lines file in the sweep cache ``folder``
    (those not there yet); the number stored."""
    stored = 0
    for row in rows:
        desc = description(row)
        if load_record(folder, desc) is None:
            store(folder, desc, {m: row[m] for m in METRICS}, row["wall_s"],
                  source="medmnist_table.py JSON lines")
            stored += 1
    return stored


def run_table(args: argparse.Namespace, folder: Path):
    """The sweep of the table: one row per dataset, partition, strategy and seed."""
    grid = {"dataset": {d: _dataset(d, args.rounds) for d in args.datasets},
            "partition": {p: _partition(p) for p in args.partitions},
            "strategy": list(args.strategies)}
    frame = fl.sweep(grid, seeds=args.seeds, base={**TRAIN, "sites": args.sites}, out=folder,
                     workers=args.workers, metrics=METRICS)
    frame["rounds"] = [args.rounds or ROUNDS.get(d, 10) for d in frame["dataset"]]
    frame["sites"] = args.sites
    return frame


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def render(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    out = ["# FL strategies on MedMNIST under label skew", "",
           f"Command: `{command}`", "",
           f"Settings: {args.sites} sites, rounds of 1 local epoch "
           f"({args.rounds or ROUNDS}), lr decay per round {LR_DECAY}, seeds "
           f"{args.seeds}, {TRAIN}; strategies at their fedlab defaults "
           "(FedProx mu=0.01, FedAdam server lr 0.01, tau 1e-3). Mean ± std over seeds of "
           "the final round (a cell without ± ran one seed). Personalised strategies (local, "
           "fedbn, finetune, fedper, fedrep, lgfedavg, fedbabu, apfl, ifca, fedmd) are "
           "scored with each site's own model on its own test split.", ""]
    metrics = (("accuracy", "global test accuracy"), ("auc", "global test AUC"),
               ("site_mean", "mean per-site accuracy"), ("site_worst", "worst site accuracy"))
    for dataset in args.datasets:
        for metric, title in metrics:
            out += [f"## {dataset}: {title}", "",
                    "| strategy | " + " | ".join(args.partitions) + " |",
                    "|---|" + "---|" * len(args.partitions)]
            for strategy in args.strategies:
                cells = [_cell([r[metric] for r in rows if r["dataset"] == dataset
                                and r["partition"] == p and r["strategy"] == strategy
                                and r["seed"] in args.seeds and r["sites"] == args.sites])
                         for p in args.partitions]
                out.append(f"| {strategy} | " + " | ".join(cells) + " |")
            out.append("")
    done = sum(1 for r in rows if r["dataset"] in args.datasets)
    total = len(args.datasets) * len(args.partitions) * len(args.strategies) * len(args.seeds)
    wall = sum(r["wall_s"] for r in rows)
    out.append(f"Runs: {done} of {total} ({wall / 60:.0f} min of training in all).")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["pneumoniamnist", "breastmnist"])
    ap.add_argument("--partitions", nargs="+", default=list(PARTITIONS), choices=list(PARTITIONS))
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=None,
                    help=f"rounds for every dataset (default: {ROUNDS})")
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes for the runs (one thread each)")
    ap.add_argument("--quick", action="store_true", help="breastmnist, 2 rounds, 1 seed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.partitions, args.seeds, args.rounds = (
            ["breastmnist"], ["iid", "dir0.3"], [0], 2)
        args.strategies = ["centralized", "local", "fedavg", "fedprox"]
    torch.set_num_threads(args.threads)
    tag = "quick" if args.quick else "medmnist"
    out = Path(args.out) if args.out else RESULTS / f"{tag}.md"
    cache = out.with_suffix(".jsonl")
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    folder = out.with_suffix("")  # the sweep cache: <folder>/runs/<hash>.json
    if import_rows(rows, folder):
        print(f"imported the runs of {cache} into {folder / 'runs'}")
    command = "python benchmarks/medmnist_table.py " + " ".join(sys.argv[1:])
    frame = run_table(args, folder)
    done = {_key(r) for r in rows}
    with cache.open("a") as f:
        for row in frame.to_dict("records"):
            row = {k: row[k] for k in (*_KEYS, *METRICS, "wall_s")}
            if _key(row) not in done:
                rows.append(row)
                f.write(json.dumps(row) + "\n")
    out.write_text(render(rows, args, command.strip()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
