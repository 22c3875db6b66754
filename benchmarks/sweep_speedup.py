"""Sweep throughput: the same sweep run one after another and on two worker processes.

Eight small synthetic runs (FedAvg and FedProx × IID and Dirichlet 0.5 × 2 seeds, the
small CNN, 4 sites, 10 rounds: about 5 s each on one idle core) go through ``fl.sweep``
twice, without a cache: ``workers=1`` in this process on one torch thread, then
``workers=2`` (two spawned processes, one thread each, their start-up included).

    python benchmarks/sweep_speedup.py [--rounds 10] [--seeds 0 1] [--workers 2]

Prints both wall times and the throughput ratio (target >= 1.4x on 2 cores), checks
that both gave the same numbers, and writes them to ``results/sweep.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

import fedlab as fl

RESULTS = Path(__file__).resolve().parent / "results"
GRID = {"strategy": ["fedavg", "fedprox"],
        "partition": {"iid": {"partition": "iid"},
                      "dir0.5": {"partition": "dirichlet", "alpha": 0.5}}}
METRICS = ["accuracy", "auc", "site_mean", "site_worst"]


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("Model name")]
    return names[0] if names else "unknown CPU"


def timed(workers: int, seeds: list[int], base: dict):
    t0 = time.perf_counter()
    frame = fl.sweep(GRID, seeds=seeds, base=base, workers=workers, progress=False)
    return frame, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "sweep.md"))
    args = ap.parse_args()
    warnings.simplefilter("ignore", fl.history.CollapsedModelWarning)
    torch.set_num_threads(1)
    base = dict(dataset="synthetic", model="cnn", sites=4, rounds=args.rounds)
    load = os.getloadavg()[0]
    one, t1 = timed(1, args.seeds, base)
    many, tn = timed(args.workers, args.seeds, base)
    same = one[METRICS].equals(many[METRICS])
    n = len(one)
    lines = [f"runs                     : {n} (synthetic, cnn, 4 sites, {args.rounds} rounds)",
             f"workers=1 (1 thread)     : {t1:7.1f} s  ({n / t1 * 60:5.1f} runs/min)",
             f"workers={args.workers} (1 thread each): {tn:7.1f} s  ({n / tn * 60:5.1f} runs/min)",
             f"throughput ratio         : {t1 / tn:7.2f}x  (target >= 1.4x on 2 cores)",
             f"same numbers             : {same}"]
    print("\n".join(lines))
    command = "python benchmarks/sweep_speedup.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(
        "# Sweep throughput: one process against worker processes\n\n"
        f"Command: `{command.strip()}`, CPU: {cpu_model()} ({torch.get_num_threads()} torch "
        f"thread in the parent, {len(os.sched_getaffinity(0))} cores usable), "
        f"{time.strftime('%Y-%m-%d')}, load average {load:.1f} before it and "
        f"{os.getloadavg()[0]:.1f} after. One measurement, not on a reserved machine.\n\n"
        "```\n" + "\n".join(lines) + "\n```\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
