"""``fedlab deploy flower``: the options of ``fedlab run``, deployed on Flower."""

from __future__ import annotations

import argparse
import json
import signal

__all__ = ["add_deploy_parser"]


def _drop(text: str) -> tuple[str, int]:
    site, _, rnd = text.rpartition(":")
    if not site or not rnd.isdigit() or int(rnd) < 1:
        raise argparse.ArgumentTypeError(f"SITE:ROUND with a round >= 1, e.g. site-2:2, got "
                                         f"{text!r}")
    return site, int(rnd)


def cmd_deploy_flower(args: argparse.Namespace) -> int:
    from ..runspec import resolve_options
    from .flower import deploy_flower

    def stop(*_):  # SIGTERM stops every process the way Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C must stop the federation even when this process was started with SIGINT
    # ignored (a parent such as a test runner's worker passes that on)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    spec = {k: v for k, v in vars(args).items()
            if k not in ("out", "insecure", "timeout", "straggler", "drop", "threads", "quiet",
                         "func", "command", "target", "data_dir")}
    spec["param"] = args.param
    options = resolve_options(spec)
    options.data_dir = args.data_dir
    history = deploy_flower(options, args.out, insecure=args.insecure, timeout=args.timeout,
                            straggler_s=args.straggler,
                            drop=dict(args.drop), threads=args.threads,
                            echo=None if args.quiet else print)
    print(json.dumps(history.summary(), indent=1))
    return 0


def add_deploy_parser(sub) -> None:
    """The ``deploy`` command and its ``flower`` target."""
    from ..options import add_run_options

    d = sub.add_parser("deploy", help="run a federation as real processes (Flower)")
    targets = d.add_subparsers(dest="target", required=True)
    f = targets.add_parser(
        "flower", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="a SuperLink and one SuperNode per site on 127.0.0.1, TLS, fedlab's strategy")
    add_run_options(f)
    f.add_argument("--out", required=True, help="run directory (history, summary, weights, "
                   "site files, certificates, logs)")
    f.add_argument("--insecure", action="store_true", help="plain HTTP instead of TLS")
    f.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for a round's replies; a silent site drops out")
    f.add_argument("--straggler", type=float, default=None, metavar="SECONDS",
                   help="once one site replied, wait at most this long for the others")
    f.add_argument("--drop", type=_drop, action="append", default=[], metavar="SITE:ROUND",
                   help="kill SITE's SuperNode when ROUND starts (a hospital going offline)")
    f.add_argument("--threads", type=int, default=1, help="torch threads per SuperNode")
    f.add_argument("--quiet", action="store_true", help="no log lines")
    f.set_defaults(func=cmd_deploy_flower)
