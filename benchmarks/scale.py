"""Many sites: a round's training time and peak memory, sequential against vectorised.

Synthetic 28×28 images, ``--per-site`` training images per site (default 24), 3 local
SGD steps of batch 8 per round, FedAvg; the small GroupNorm CNN and the MLP. For each
number of sites (10, 100, 1000 by default; add 5000 on a GPU) and each executor
(sequential, vmap, and Ray at 10 and 100 sites when it is installed), a fresh process
runs 3 rounds and reports the mean training time of rounds 2-3 (round 1 builds the
network and places the data) and its peak memory above what it held before the run.
Alongside: one centralised epoch over the same samples with the same batch size, and,
at the largest federation, vmap's time per round against its chunk size.

    python benchmarks/scale.py                  # about 10 minutes on 2 cores
    python benchmarks/scale.py --quick          # seconds: checks the script
    python benchmarks/scale.py --device cuda --sites 10 100 1000 5000

Writes ``benchmarks/results/scale.md`` (or ``--out``) with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def measure(spec: dict) -> dict:
    """One configuration in this process: seconds per round and peak memory (MB)."""
    import torch

    import fedlab as fl

    torch.set_num_threads(spec["threads"])
    data = fl.data.make_synthetic(n_train=spec["sites"] * spec["per_site"], n_val=10,
                                  n_test=spec["sites"] * 2, seed=0)
    dev = spec["device"]
    if spec["executor"] == "centralised":
        from fedlab.training import Train, train_epochs

        net = fl.models.create_model(spec["model"]).to(dev)
        x = torch.from_numpy(data.train.images).to(dev)
        y = torch.from_numpy(data.train.labels).to(dev)
        cfg = Train(optimizer="sgd", lr=0.05, momentum=0.0, batch_size=8)
        before = _rss_mb()
        train_epochs(net, x[:64], y[:64], cfg, torch.Generator().manual_seed(0))  # warm-up
        t0 = time.perf_counter()
        train_epochs(net, x, y, cfg, torch.Generator().manual_seed(0))
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        return {"round_s": time.perf_counter() - t0, "peak_mb": _peak_mb() - before}
    fed = fl.data.split(data, n_sites=spec["sites"], seed=0)
    executor = spec["executor"]
    if executor == "vmap" and spec.get("chunk"):
        executor = fl.executors.Vmap(max_sites_per_batch=spec["chunk"])
    before = _rss_mb()
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    h = fl.run(fed, model=spec["model"], rounds=3, seed=0, executor=executor, device=dev,
               progress=False, optimizer="sgd", lr=0.05, momentum=0.0, batch_size=8,
               local_steps=3, eval_every=3)
    out = {"round_s": sum(r["train_s"] for r in h.rounds[1:]) / 2,
           "peak_mb": _peak_mb() - before}
    if dev.startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _in_subprocess(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", nargs="+", type=int, default=[10, 100, 1000])
    ap.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    ap.add_argument("--per-site", type=int, default=24)
    ap.add_argument("--chunks", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="10 sites, the MLP, no Ray")
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    if args.quick:
        args.sites, args.models, args.chunks = [10], ["mlp"], [4]
    try:
        import ray  # noqa: F401
        has_ray = not args.quick
    except ImportError:
        has_ray = False
    base = {"per_site": args.per_site, "device": args.device, "threads": args.threads}
    rows = []
    for model in args.models:
        for n in args.sites:
            executors = ["centralised", "sequential", "vmap"] + (
                ["ray"] if has_ray and n <= 100 else [])
            row = {"model": model, "sites": n}
            for ex in executors:
                row[ex] = _in_subprocess({**base, "model": model, "sites": n, "executor": ex})
                print(model, n, ex, row[ex], flush=True)
            rows.append(row)
    curve = []
    for c in args.chunks:
        r = _in_subprocess({**base, "model": args.models[0], "sites": max(args.sites),
                            "executor": "vmap", "chunk": c})
        curve.append((c, r))
        print("chunk", c, r, flush=True)
    import tempfile

    out = Path(args.out) if args.out else (
        Path(tempfile.gettempdir()) / "scale-quick.md" if args.quick else RESULTS / "scale.md")
    out.write_text(render(rows, curve, args))
    print(f"-> {out}")


def _s(r: dict, key: str = "round_s") -> str:
    return "error" if "error" in r else f"{r[key]:.3g}"


def render(rows: list[dict], curve: list, args: argparse.Namespace) -> str:
    lines = ["# Many sites: sequential against vectorised (vmap) local training", "",
             f"Command: `python benchmarks/scale.py {' '.join(sys.argv[1:])}`", "",
             f"Machine: {_machine()}; device {args.device}, {args.threads} torch threads. "
             f"FedAvg, {args.per_site} training images per site, 3 local SGD steps of batch "
             "8 per round; seconds of training per round (mean of rounds 2-3) and peak "
             "memory above the process's memory before the run (MB), each in a fresh "
             "process. 'centralised' is one epoch over the same samples, batch 8.", "",
             "| model | sites | centralised epoch s | sequential s | vmap s | vmap speed-up | "
             "vmap / centralised | sequential MB | vmap MB | ray s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seq, vec, cen = r["sequential"], r["vmap"], r["centralised"]
        ok = all("error" not in x for x in (seq, vec, cen))
        speed = f"{seq['round_s'] / vec['round_s']:.2f}×" if ok else "–"
        vs_c = f"{vec['round_s'] / cen['round_s']:.2f}×" if ok else "–"
        ray = _s(r["ray"]) if "ray" in r else "–"
        lines.append(f"| {r['model']} | {r['sites']} | {_s(cen)} | {_s(seq)} | {_s(vec)} | "
                     f"{speed} | {vs_c} | {_s(seq, 'peak_mb')} | {_s(vec, 'peak_mb')} | "
                     f"{ray} |")
    lines += ["", f"vmap's chunk size (`max_sites_per_batch`) at {max(args.sites)} sites, "
              f"{args.models[0]}:", "", "| chunk | s per round | peak MB |", "|---|---|---|"]
    lines += [f"| {c} | {_s(r)} | {_s(r, 'peak_mb')} |" for c, r in curve]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
