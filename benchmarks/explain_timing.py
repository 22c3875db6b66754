"""Time per image of each saliency method in ``fl.explain`` on this CPU.

The default small CNN on a batch of PneumoniaMNIST test images (28x28), one thread,
median of three runs after a warm-up (the warm-up pays MONAI's import).

    python benchmarks/explain_timing.py [--batch 32] [--repeats 3]

Needs pneumoniamnist.npz in the data directory (FEDLAB_DATA or data/).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import fedlab as fl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = fl.data.load("pneumoniamnist", download=False)
    torch.manual_seed(0)
    model = fl.models.create_model("cnn").eval()
    x = data.test.images[: args.batch]
    for method in fl.explain.METHODS:
        fl.explain.saliency(model, x[:2], method)
    print(f"load average before: {os.getloadavg()}")
    for method in fl.explain.METHODS:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fl.explain.saliency(model, x, method)
            times.append(time.perf_counter() - t0)
        print(f"{method:22s} {1000 * np.median(times) / len(x):7.1f} ms/image "
              f"(batch {len(x)}, 1 thread, median of {args.repeats})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
