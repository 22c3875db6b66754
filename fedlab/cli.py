"""Command line: ``fedlab run``, ``fedlab data``, ``fedlab tutorials``, ``fedlab site``.

``fedlab run`` is the script equivalent of :func:`fedlab.run`: the same arguments,
the same History, written to ``--out`` with a summary and the final weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

from .options import PARTITIONS, add_config_options, config_keywords, partitioner, strategy_from


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    from safetensors.torch import save_file

    import fedlab as fl

    if args.dataset == "synthetic":
        dataset = fl.data.make_synthetic(seed=args.seed)
    else:
        dataset = fl.data.load(args.dataset, root=args.data_dir, progress=not args.quiet)
    sizes = fl.data.QuantitySkew(skew=args.quantity_skew) if (
        args.quantity_skew and args.partition != "quantity") else None
    shift = fl.data.AcquisitionShift(strength=args.shift) if args.shift else None
    sites = fl.data.split(dataset, n_sites=args.sites, scheme=partitioner(args),
                          sizes=sizes, shift=shift, seed=args.seed)
    model = args.model or ("recon-unet-dc" if args.task == "reconstruction" else "cnn")
    if args.task == "reconstruction":
        sites = fl.data.undersample(sites, acquisitions(args), seed=args.seed)
    elif args.acceleration is not None:
        raise ValueError("--acceleration needs --task reconstruction")
    out = Path(args.out)
    strategy = strategy_from(args.strategy, args.param, args.combine)
    if getattr(strategy, "public", False) is None:  # FedMD: the public set all sites hold
        val = dataset.val
        strategy = dataclasses.replace(strategy, public=val.subset(np.arange(min(500, len(val)))))
    history = fl.run(sites, model=model, strategy=strategy, rounds=args.rounds,
                     seed=args.seed, topology=args.topology, executor=args.executor,
                     device=args.device, progress=not args.quiet, run_dir=out,
                     resume=args.resume, **config_keywords(args))
    history.save(out / "history.json")
    summary = history.summary()
    summary.update(dataset=dataset.name, task=args.task, partition=sites.scheme,
                   sites=args.sites, topology=args.topology)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    state = {k: v.detach().cpu().contiguous() for k, v in history.final_state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"model": model})
    print(json.dumps(summary, indent=1))
    return 0


def acquisitions(args: argparse.Namespace) -> list:
    """One MRI protocol per site from ``--acceleration`` (one value for every site, or
    one per site), ``--mask`` and ``--noise``."""
    from .data import Acquisition

    text = args.acceleration or "4"
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--acceleration must be numbers >= 1, e.g. 4 or 2,4,8, got "
                         f"{text!r}") from None
    if len(values) not in (1, args.sites):
        raise ValueError(f"--acceleration takes one value or one per site ({args.sites}), got "
                         f"{len(values)}")
    values = values * args.sites if len(values) == 1 else values
    return [Acquisition(acceleration=a, mask=args.mask, noise_std=args.noise) for a in values]


def cmd_data(args: argparse.Namespace) -> int:
    from .data import medmnist

    root = Path(args.data_dir) if args.data_dir else medmnist.default_data_dir()
    if args.action == "list":
        have = medmnist.available(root)
        print(f"data directory: {root}")
        for name, info in medmnist.DATASETS.items():
            mark = "yes" if have[name] else "no "
            print(f"  [{mark}] {name:16s} {info.task:18s} {info.license:12s} "
                  f"{info.n_train}/{info.n_val}/{info.n_test}")
        return 0
    if not args.names:
        raise SystemExit(f"fedlab data {args.action}: name at least one dataset")
    for name in args.names:
        fn = medmnist.download if args.action == "download" else medmnist.verify
        print(f"{name}: ok ({fn(name, root)})")
    return 0


def cmd_tutorials(args: argparse.Namespace) -> int:
    from .tutorials import run_notebooks

    if args.check and args.smoke:
        print("fedlab tutorials: --check runs the teaching defaults; drop --smoke",
              file=sys.stderr)
        return 2
    return run_notebooks(args.names, smoke=args.smoke, inplace=args.inplace, out=args.out,
                         check=args.check, seed=args.seed, threads=args.threads)


def cmd_site(args: argparse.Namespace) -> int:
    from .site import build

    built = build(args.out, api=not args.no_api)
    print(f"{built['pages']} pages, {sum(built['figures'].values())} figures -> {args.out} "
          f"(serve it: python -m http.server -d {args.out} 8000)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.kspace import MASKS
    from .data.medmnist import DATASETS
    from .executors import EXECUTORS
    from .models import MODELS
    from .strategies import RULES, names
    from .topologies import TOPOLOGIES

    p = argparse.ArgumentParser(prog="fedlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate one federation and write its History",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--dataset", default="pneumoniamnist",
                   choices=["synthetic", *sorted(DATASETS)])
    r.add_argument("--data-dir", default=None, help="data directory (default: $FEDLAB_DATA)")
    r.add_argument("--sites", type=int, default=5, help="number of sites")
    r.add_argument("--partition", default="iid", choices=PARTITIONS)
    r.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (> 0)")
    r.add_argument("--min-size", type=int, default=10, help="fewest training samples a site gets")
    r.add_argument("--classes-per-site", type=int, default=2,
                   help="pathological: classes a site sees")
    r.add_argument("--shards-per-site", type=int, default=2, help="shards: shards dealt to a site")
    r.add_argument("--quantity-skew", type=float, default=0.0,
                   help="power-law skew of site sizes (0: equal; 'quantity' uses 1 when 0); "
                        "composes with any partition")
    r.add_argument("--shift", type=float, default=0.0,
                   help="acquisition shift strength in [0, 1]: a different scanner per site")
    r.add_argument("--strategy", default="fedavg", choices=names(),
                   help="the FL algorithm (a robust rule's name: FedAvg with that rule)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy hyper-parameter, e.g. --param mu=0.1 (repeatable)")
    r.add_argument("--combine", default=None, choices=sorted(RULES),
                   help="a robust rule in place of the strategy's mean (its defaults)")
    r.add_argument("--topology", default="star", choices=sorted(TOPOLOGIES),
                   help="who talks to whom: a server (star), cyclic, gossip on a graph, swarm")
    r.add_argument("--task", default="classification", choices=["classification",
                                                                 "reconstruction"],
                   help="reconstruction: each site's images become undersampled k-space "
                        "(the target is the fully sampled image; PSNR, SSIM, NMSE)")
    r.add_argument("--acceleration", default=None, metavar="R[,R...]",
                   help="reconstruction: k-space acceleration, one for all sites or one per "
                        "site (default 4)")
    r.add_argument("--mask", default="cartesian", choices=list(MASKS),
                   help="reconstruction: the sampling pattern")
    r.add_argument("--noise", type=float, default=0.0,
                   help="reconstruction: std of the complex k-space noise")
    r.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="the network (default: cnn; recon-unet-dc for reconstruction)")
    r.add_argument("--rounds", type=int, default=10)
    r.add_argument("--executor", default="sequential", choices=sorted(EXECUTORS),
                   help="who runs the sites' local work (fedlab.executors)")
    add_config_options(r)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--out", required=True, help="run directory (history, summary, weights)")
    r.add_argument("--resume", action="store_true", help="continue the run found in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("data", help="list, download or verify MedMNIST files")
    d.add_argument("action", choices=["list", "download", "verify"])
    d.add_argument("names", nargs="*", help="dataset names (see `fedlab data list`)")
    d.add_argument("--data-dir", default=None)
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("tutorials", help="execute the tutorial notebooks with papermill")
    t.add_argument("names", nargs="*", help="notebook names or numbers (default: all)")
    t.add_argument("--smoke", action="store_true", help="tiny sizes, seconds per notebook")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--inplace", action="store_true", help="save outputs into the notebooks")
    g.add_argument("--out", default=None, help="folder for the executed copies")
    t.add_argument("--check", action="store_true",
                   help="teaching defaults with the claim cells checked; print each claim's "
                        "margin and fail if one does not hold")
    t.add_argument("--seed", type=int, default=None,
                   help="inject SEED into each lesson's parameters cell (default: as committed)")
    t.add_argument("--threads", type=int, default=None,
                   help="torch threads in the kernels (OMP_NUM_THREADS; default: all cores)")
    t.set_defaults(func=cmd_tutorials)

    w = sub.add_parser("site", help="build the static site: README, lessons, API reference")
    w.add_argument("--out", default="site", help="folder for the site (replaced)")
    w.add_argument("--no-api", action="store_true", help="skip the API reference pages")
    w.set_defaults(func=cmd_site)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = (f"; the rounds done are kept: continue with --resume --out {out}"
                if args.command == "run" else "")
        print(f"fedlab {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except FloatingPointError as err:  # the run diverged: not a crash, and not a success
        print(f"fedlab {args.command}: the run diverged: {err}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError) as err:  # user errors: one line, no traceback
        print(f"fedlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
