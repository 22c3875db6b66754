"""Synchronous FedAvg against FedAsync and FedBuff when one hospital is 10x slower:
simulated time to reach the synchronous run's final accuracy, over seeds.

Five PneumoniaMNIST hospitals (Dirichlet alpha=2 label skew, as lesson 13); four on a
hospital link, one rural clinic whose jobs (download, local training, upload) take about
ten times as long. Every job is the same local work (``--steps`` Adam steps of batch 32). The
synchronous run makes ``--rounds`` rounds; each asynchronous run goes on until its
simulated clock passes the synchronous run's (or ``--max-versions``). Target: FedBuff
reaches the synchronous run's final test accuracy in at most 0.6x its simulated time.

    python benchmarks/async.py [--seeds 3] [--rounds 8] [--steps 20]
        [--out benchmarks/results/async.md]

Needs pneumoniamnist.npz in the data directory (FEDLAB_DATA or data/).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

import fedlab as fl
from fedlab.comm import Link

FAST = Link(up_mbps=100, down_mbps=100, latency_ms=20, samples_per_s=1600)
SLOW = Link(up_mbps=3, down_mbps=25, latency_ms=60, samples_per_s=200)  # the rural clinic
NETWORK = {"site-1": FAST, "site-2": FAST, "site-3": FAST, "site-4": FAST, "site-5": SLOW}
SETUPS = {"FedAsync": lambda: fl.strategies.FedAsync(alpha=0.6),
          "FedBuff k=3": lambda: fl.strategies.FedBuff(k=3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-versions", type=int, default=400)
    ap.add_argument("--out", default=None, help="also write the report to this Markdown file")
    args = ap.parse_args()
    data = fl.data.load("pneumoniamnist", download=False)
    train = dict(local_steps=args.steps, batch_size=32, optimizer="adam", lr=1e-3)
    t0 = time.perf_counter()
    rows = []
    for seed in range(args.seeds):
        sites = fl.data.split(data, 5, scheme=fl.data.Dirichlet(alpha=2.0), seed=seed)
        sync = fl.run(sites, strategy="fedavg", rounds=args.rounds, seed=seed,
                      network=NETWORK, progress=False, **train)
        horizon, target = sync.rounds[-1]["sim_total_s"], sync.final("accuracy")
        rows.append({"seed": seed, "run": "sync FedAvg", "versions": args.rounds,
                     "sim_s": horizon, "accuracy": target, "to_target_s": horizon,
                     "slow_share": 1 / 5})

        def stop(h, rnd, horizon=horizon, target=target):
            done = h.rounds[-1]["sim_total_s"] >= horizon
            return done or (bool(h.metrics) and h.metrics[-1]["round"] == rnd
                            and h.final("accuracy") >= target)

        for label, make in SETUPS.items():
            h = fl.run(sites, strategy=make(), rounds=args.max_versions, seed=seed,
                       network=NETWORK, progress=False, callbacks=[stop], eval_every=2,
                       **train)
            a = fl.comm.arrivals(h)
            rows.append({"seed": seed, "run": label, "versions": h.last_round,
                         "sim_s": h.rounds[-1]["sim_total_s"], "accuracy": h.final("accuracy"),
                         "to_target_s": fl.comm.time_to_target(h, target),
                         "slow_share": float((a["site"] == "site-5").mean())})
    lines = [f"Command: `python benchmarks/async.py --seeds {args.seeds} --rounds {args.rounds} "
             f"--steps {args.steps}`",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
             f"{torch.__version__}. Five PneumoniaMNIST hospitals (Dirichlet 2.0); four on "
             f"{FAST}, the rural clinic on {SLOW}; {args.steps} Adam steps of batch 32 per job. "
             "An asynchronous run stops when it reaches the synchronous run's final accuracy "
             "or its simulated time.", "",
             "| seed | run | versions | simulated s | accuracy | s to sync's final accuracy "
             "| ratio to sync | share of updates from the slow clinic |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = {label: [] for label in SETUPS}
    for r in rows:
        sync_s = next(x["sim_s"] for x in rows
                      if x["seed"] == r["seed"] and x["run"] == "sync FedAvg")
        ratio = r["to_target_s"] / sync_s
        if r["run"] in ratios:
            ratios[r["run"]].append(ratio)
        lines.append(f"| {r['seed']} | {r['run']} | {r['versions']} | {r['sim_s']:.1f} | "
                     f"{r['accuracy']:.3f} | {r['to_target_s']:.1f} | {ratio:.2f} | "
                     f"{r['slow_share']:.2f} |")
    lines.append("")
    for label, values in ratios.items():
        reached = [v for v in values if np.isfinite(v)]
        lines.append(f"{label}: reached the synchronous final accuracy on {len(reached)} of "
                     f"{len(values)} seeds; time ratio "
                     f"{', '.join(f'{v:.2f}' for v in values)} (mean of those reached "
                     f"{np.mean(reached):.2f})." if reached else
                     f"{label}: never reached the synchronous final accuracy.")
    buff = ratios["FedBuff k=3"]
    met = all(np.isfinite(v) and v <= 0.6 for v in buff)
    lines += ["", f"Target (FedBuff <= 0.6x the synchronous time on every seed): "
              f"{'met' if met else 'not met'}. Total time {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Asynchronous FL: time to accuracy with a slow hospital\n\n"
                                  + text + "\n")


if __name__ == "__main__":
    main()
