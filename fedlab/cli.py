"""Command line: ``fedlab run``, ``sweep``, ``deploy``, ``data``, ``tutorials``, ``site``.

``fedlab run`` is the script equivalent of :func:`fedlab.run`: the same arguments,
the same History, written to ``--out`` with a summary and the final weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

from .options import add_run_options


def cmd_run(args: argparse.Namespace) -> int:
    from .run_outputs import write_run
    from .runspec import prepare

    out = Path(args.out)
    run = prepare(args, progress=not args.quiet)
    history = run.run(run_dir=out, resume=args.resume, progress=not args.quiet)
    summary = write_run(out, history, run.setting(), run.model)
    print(json.dumps(summary, indent=1))
    return 0


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
    from .deploy.cli import add_deploy_parser
    from .sweep_cli import add_sweep_parser

    p = argparse.ArgumentParser(prog="fedlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate one federation and write its History",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(r)
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
    add_sweep_parser(sub)
    add_deploy_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = {"run": f"; the rounds done are kept: continue with --resume --out {out}",
                "sweep": f"; the finished runs are cached in {out}: run it again to resume",
                "deploy": "; every process of the federation was stopped"}.get(args.command, "")
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
