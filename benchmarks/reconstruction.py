"""Federated reconstruction on PneumoniaMNIST: zero-filled, local-only, FedAvg and
centralised, per site, over seeds.

Two federations of 4 IID hospitals, each hospital with ``--per-site`` training images
(a small hospital: the setting where federating is meant to help):

1. **uniform**: every hospital scans at the same acceleration, 4x and then 8x (Cartesian
   lines, fastMRI centre fractions). Target: FedAvg within 0.5 dB PSNR of centralised.
2. **mixed**: the hospitals scan at 2x, 4x, 6x and 8x. Target: at the 8x hospital, FedAvg
   above every local-only model (each hospital's own model tested on the 8x hospital's
   patients), and the gain of FedAvg over local-only per hospital.

Every run: the recon-unet-dc model (U-Net residual plus data consistency), Adam 3e-3,
batch 32, one local epoch per round; FedAvg also with 4 local epochs, so that each site
takes about as many steps per round as the centralised model per epoch (with one epoch a
FedAvg round averages 3 steps per site against the centralised model's 10: the gap
between the two is then mostly optimisation, not federation). Mean and standard
deviation over ``--seeds``.

    python benchmarks/reconstruction.py [--seeds 3] [--rounds 20] [--per-site 75]
        [--out benchmarks/results/reconstruction.md]

Needs pneumoniamnist.npz in the data directory (FEDLAB_DATA or data/).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import fedlab as fl
from fedlab.reconstruction import ZERO_FILLED, quality_table

TRAIN = dict(local_epochs=1, batch_size=32, optimizer="adam", lr=3e-3)
SETUPS = {"local-only": "local", "FedAvg": "fedavg", "FedAvg, 4 local epochs": "fedavg",
          "centralised": "centralized"}
#: more local work: each site takes about as many steps per round as the centralised model
#: takes per epoch over the pooled images (4 sites x 75 images / batch 32)
EXTRA = {"FedAvg, 4 local epochs": {"local_epochs": 4}}


def federation(data, accelerations, per_site: int, seed: int):
    rng = np.random.default_rng(seed)
    n = per_site * len(accelerations)

    def take(part, k):
        return part.subset(np.sort(rng.choice(len(part), k, replace=False)))

    small = dataclasses.replace(data, train=take(data.train, n), val=take(data.val, 40),
                                test=take(data.test, 50 * len(accelerations)))
    sites = fl.data.split(small, len(accelerations), seed=seed)
    return fl.data.undersample(sites, accelerations, seed=seed)


def runs_for(sites, rounds: int, seed: int) -> dict:
    return {label: fl.run(sites, model="recon-unet-dc", strategy=strategy, rounds=rounds,
                          seed=seed, progress=False, **(TRAIN | EXTRA.get(label, {})))
            for label, strategy in SETUPS.items()}


def mean_sd(frames: list[pd.DataFrame]) -> pd.DataFrame:
    stack = np.stack([f.to_numpy() for f in frames])
    mean, sd = stack.mean(axis=0), stack.std(axis=0, ddof=1) if len(frames) > 1 else 0 * stack[0]
    cells = np.vectorize(lambda m, s: f"{m:.2f} ± {s:.2f}")(mean, sd)
    return pd.DataFrame(cells, index=frames[0].index, columns=frames[0].columns)


def markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join([frame.index.name or "", *map(str, frame.columns)]) + " |"
    rule = "|" + "---|" * (len(frame.columns) + 1)
    body = ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in frame.iterrows()]
    return "\n".join([head, rule, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-site", type=int, default=75)
    ap.add_argument("--out", default=None, help="also write the report to this Markdown file")
    args = ap.parse_args()
    data = fl.data.load("pneumoniamnist", download=False)
    t0 = time.perf_counter()
    lines = [f"Command: `python benchmarks/reconstruction.py --seeds {args.seeds} --rounds "
             f"{args.rounds} --per-site {args.per_site}`",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
             f"{torch.__version__}. Model recon-unet-dc; {args.rounds} rounds of one local "
             f"epoch, {TRAIN}; 4 IID hospitals of {args.per_site} training and 50 test "
             f"images each; mean ± sd over seeds 0..{args.seeds - 1}.", ""]
    for acc in (4, 8):
        psnr, ssim, gaps, gaps4 = [], [], [], []
        for seed in range(args.seeds):
            runs = runs_for(federation(data, [acc] * 4, args.per_site, seed), args.rounds, seed)
            psnr.append(quality_table(runs, "psnr"))
            ssim.append(quality_table(runs, "ssim"))
            pooled = psnr[-1].loc["global"]
            gaps.append(pooled["centralised"] - pooled["FedAvg"])
            gaps4.append(pooled["centralised"] - pooled["FedAvg, 4 local epochs"])
        lines += [f"## Uniform: every hospital at {acc}x", "", "PSNR (dB):", "",
                  markdown(mean_sd(psnr)), "", "SSIM:", "", markdown(mean_sd(ssim)), "",
                  f"Centralised minus FedAvg, pooled test PSNR: {np.mean(gaps):.2f} dB "
                  f"(per seed {', '.join(f'{g:.2f}' for g in gaps)}); target <= 0.5 dB: "
                  f"{'met' if np.mean(gaps) <= 0.5 else 'not met'}. With 4 local epochs: "
                  f"{np.mean(gaps4):.2f} dB (per seed {', '.join(f'{g:.2f}' for g in gaps4)}); "
                  f"target {'met' if np.mean(gaps4) <= 0.5 else 'not met'}.", ""]
    psnr, beat = [], []
    for seed in range(args.seeds):
        sites = federation(data, [2, 4, 6, 8], args.per_site, seed)
        runs = runs_for(sites, args.rounds, seed)
        psnr.append(quality_table(runs, "psnr"))
        at_8x = sites.names[-1]
        cross = fl.cross_site(runs["local-only"], sites, metric="psnr")
        beat.append(psnr[-1].at[at_8x, "FedAvg"] - cross[at_8x].max())
    gain = [p["FedAvg"] - p["local-only"] for p in psnr]
    frame = mean_sd(psnr)
    frame.insert(len(frame.columns), "FedAvg - local-only",
                 [f"{m:+.2f}" for m in np.mean(gain, axis=0)])
    lines += ["## Mixed: hospitals at 2x, 4x, 6x, 8x (site-1 .. site-4)", "", "PSNR (dB):", "",
              markdown(frame), "",
              f"At the 8x hospital, FedAvg minus the best local-only model there (any "
              f"hospital's): {np.mean(beat):+.2f} dB (per seed "
              f"{', '.join(f'{b:+.2f}' for b in beat)}); target > 0: "
              f"{'met' if min(beat) > 0 else 'not met'} on every seed."
              if beat else "", "",
              f"Zero-filled column: the baseline ({ZERO_FILLED}). Total time "
              f"{time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Federated reconstruction on PneumoniaMNIST\n\n" + text + "\n")


if __name__ == "__main__":
    main()
