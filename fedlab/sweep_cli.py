"""``fedlab sweep CONFIG.toml``: a grid × seeds of runs from a TOML file.

The file holds ``seeds = [...]``, a ``[base]`` table of fixed run options and a
``[grid]`` table of option -> list of values (the options of ``fedlab run``, with
underscores); a ``[grid.NAME]`` table of label -> options sets several options together::

    seeds = [0, 1, 2]

    [base]
    dataset = "synthetic"
    sites = 4
    rounds = 5
    model = "mlp"

    [grid]
    strategy = ["fedavg", "fedprox"]

    [grid.partition]
    iid = { partition = "iid" }
    "dir0.3" = { partition = "dirichlet", alpha = 0.3 }

Every finished run is cached in ``--out DIR/runs/`` (a second call runs only what is
missing); the runs go to ``DIR/sweep.csv``, the means with 95% confidence intervals to
``DIR/summary.csv``, and the summary table is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_sweep_parser", "cmd_sweep", "read_config"]


def read_config(path: str | Path) -> dict:
    """The ``grid``, ``seeds`` and ``base`` of a sweep's TOML file at ``path``."""
    import tomllib

    try:
        config = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    unknown = sorted(set(config) - {"grid", "seeds", "base"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a sweep file holds seeds = [...], "
                         "[base] and [grid]")
    if not isinstance(config.get("grid"), dict) or not config["grid"]:
        raise ValueError(f"{path}: needs a [grid] table of option = [values]")
    return {"grid": config["grid"], "seeds": config.get("seeds", [0, 1, 2]),
            "base": config.get("base", {})}


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweep of ``args.config``, write the CSVs into ``args.out``, print the
    summary."""
    import pandas as pd

    from .sweeps import METRICS, sweep, sweep_summary

    config = read_config(args.config)
    metrics = tuple(dict.fromkeys([*METRICS, args.metric]))
    frame = sweep(**config, out=args.out, workers=args.workers, backend=args.backend,
                  metrics=metrics, progress=not args.quiet)
    out = Path(args.out)
    frame.to_csv(out / "sweep.csv", index=False)
    summary = sweep_summary(frame, metric=args.metric)
    summary.to_csv(out / "summary.csv", index=False)
    cached = int(frame["cached"].sum())
    print(f"{len(frame)} runs ({cached} from the cache in {out / 'runs'}); {args.metric}, "
          "mean and 95% confidence interval of the mean over seeds:")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out / 'sweep.csv'} and {out / 'summary.csv'}")
    return 0


def add_sweep_parser(sub) -> argparse.ArgumentParser:
    """Register ``fedlab sweep`` on the subparsers ``sub`` of the ``fedlab`` parser."""
    s = sub.add_parser("sweep", help="a grid x seeds of runs from a TOML file, cached, with "
                                     "confidence intervals",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("config", help="the sweep's TOML file ([base], [grid], seeds = [...])")
    s.add_argument("--out", required=True,
                   help="folder: runs/ (the cache), sweep.csv, summary.csv")
    s.add_argument("--workers", type=int, default=1,
                   help="worker processes (one torch thread each); 1: in this process")
    s.add_argument("--backend", default="processes", choices=["processes", "ray"],
                   help="what runs the workers")
    s.add_argument("--metric", default="accuracy",
                   help="the column summarised (accuracy, auc, site_mean, site_worst, or a key "
                        "of History.summary() such as loss)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)
    return s
