"""Communication trade-off on PneumoniaMNIST: accuracy against uplink megabytes per codec.

FedAvg over 5 IID sites with the quality benchmark's recipe (``benchmarks/quality.py``),
once per uplink codec: identity, fp16, int8, top-k 10% and 1% of every update tensor,
each with and without error feedback, and top-k 2% with error feedback and fp16 values.
Target (issue 4): top-k 1% with error feedback ends within 2 accuracy points of
uncompressed FedAvg with at least 20x less uplink.

    python benchmarks/comm_tradeoff.py [--rounds 15] [--out benchmarks/results/comm_tradeoff.md]

Needs pneumoniamnist.npz in the data directory (FEDLAB_DATA or data/).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import fedlab as fl

RECIPE = dict(optimizer="adam", lr=1e-3, batch_size=64, lr_decay=0.7, augment=True)
CODECS = ("identity", "fp16", "int8", "topk:0.1", "topk-ef:0.1", "topk:0.01", "topk-ef:0.01",
          "topk-ef:0.02|fp16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--codecs", nargs="*", default=list(CODECS))
    ap.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = fl.data.load("pneumoniamnist", download=False)
    sites = fl.data.split(data, n_sites=5, scheme=fl.data.IID(), seed=args.seed)
    rows = []
    for codec in args.codecs:
        t0 = time.perf_counter()
        h = fl.run(sites, model="cnn", strategy="fedavg", rounds=args.rounds, seed=args.seed,
                   uplink=codec, progress=False, **RECIPE)
        s = h.summary()
        rows.append({"codec": str(fl.comm.get_codec(codec)), "accuracy": s["accuracy"],
                     "auc": s["auc"], "up_mb": h.bytes("up") / 1e6,
                     "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    base = rows[0]
    lines = [
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/comm_tradeoff.py --rounds {args.rounds} "
        f"--seed {args.seed}" + (f" --codecs {' '.join(args.codecs)}`"
                                 if list(args.codecs) != list(CODECS) else "`"),
        f"Recipe: FedAvg, model cnn, 5 IID sites, {args.rounds} rounds of 1 local epoch, "
        f"{RECIPE}; the codec applies to the uplink (downlink uncompressed). Uplink MB: "
        "safetensors bytes of what the sites sent, all rounds. `topk` names stand for "
        "`delta|topk`: the update since the received model is sparsified.",
        "",
        "| uplink codec | test ACC | test AUC | uplink MB | reduction | ACC vs identity "
        "(points) | wall time (s) |",
        "|---|---|---|---|---|---|---|",
        *[f"| `{r['codec']}` | {r['accuracy']:.3f} | {r['auc']:.3f} | {r['up_mb']:.2f} | "
          f"{base['up_mb'] / r['up_mb']:.1f}x | {100 * (r['accuracy'] - base['accuracy']):+.1f}"
          f" | {r['seconds']:.0f} |" for r in rows],
    ]
    ef = [r for r in rows if r["codec"] == "delta|topk-ef:0.01"]
    if ef and base["codec"] == "identity":
        gap = 100 * (base["accuracy"] - ef[0]["accuracy"])
        ratio = base["up_mb"] / ef[0]["up_mb"]
        met = gap <= 2 and ratio >= 20
        lines += ["", f"Target (top-k 1% with error feedback within 2 points of identity with "
                  f">= 20x less uplink): {'met' if met else 'NOT met'} "
                  f"({gap:.1f} points below, {ratio:.0f}x less uplink)."]
    # a "|" inside a table cell must be escaped, even in code
    text = "\n".join(line.replace("`delta|", "`delta\\|").replace("|fp16`", "\\|fp16`")
                     if line.startswith("| `") else line for line in lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Communication trade-off on PneumoniaMNIST\n\n" + text + "\n")


if __name__ == "__main__":
    main()
