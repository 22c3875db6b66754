"""The command line's options that are built from fedlab's own objects: the run's
settings from the fields of ``fl.Train``, ``fl.Comm`` and ``fl.Eval`` (documented once,
in their docstrings), strategies and robust rules from their dataclass fields,
partitions by name."""

from __future__ import annotations

import argparse

__all__ = ["PARTITIONS", "add_config_options", "add_run_options", "config_keywords",
           "count_or_fraction", "field_docs", "partitioner", "strategy_from"]

PARTITIONS = ("iid", "dirichlet", "pathological", "shards", "quantity")


def partitioner(args: argparse.Namespace):
    from . import data

    return {
        "iid": lambda: data.IID(),
        "dirichlet": lambda: data.Dirichlet(alpha=args.alpha, min_size=args.min_size),
        "pathological": lambda: data.Pathological(classes_per_site=args.classes_per_site),
        "shards": lambda: data.Shards(shards_per_site=args.shards_per_site),
        "quantity": lambda: data.QuantitySkew(skew=args.quantity_skew or 1.0),
    }[args.partition]()


def strategy_from(name: str, params: list[str], combine: str | None = None):
    """A strategy from its name and ``KEY=VALUE`` hyper-parameters, typed by its fields
    (a robust rule's name: the rule's fields), with the robust rule ``combine``."""
    import dataclasses

    from .strategies import RULES, get, get_rule

    key = name.lower().replace("-", "").replace("_", "")
    cls = RULES[key] if key in RULES else type(get(name))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "combine"}
    kwargs = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE with KEY one of "
                             f"{sorted(fields) or 'nothing (this strategy has no parameters)'}")
        default = fields[key].default
        kind = type(default) if default is not dataclasses.MISSING else str
        if kind not in (int, float, str, bool):
            raise ValueError(f"--param {key}: a {kind.__name__} cannot be set from the command "
                             "line; use the Python API")
        try:
            kwargs[key] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
        except ValueError:
            raise ValueError(f"--param {key}={raw}: {key} must be a {kind.__name__}") from None
    strategy = get(name, **kwargs)
    if combine is not None:
        strategy = dataclasses.replace(strategy, combine=get_rule(combine))
    return strategy


def add_run_options(r: argparse.ArgumentParser) -> None:
    """The options of ``fedlab run`` that describe a run (parser ``r`` gains them)."""
    from .data.kspace import MASKS
    from .data.medmnist import DATASETS
    from .executors import EXECUTORS
    from .models import MODELS
    from .strategies import RULES, names
    from .topologies import TOPOLOGIES

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


def field_docs(cls) -> dict[str, str]:
    """The text of each parameter in a numpy-style class docstring."""
    import re

    docs, names = {}, []
    for line in (cls.__doc__ or "").splitlines():
        head = re.match(r"^    (\w+(?:, \w+)*) :", line)
        if head:
            names = [n.strip() for n in head.group(1).split(",")]
        elif names and line.startswith("        "):
            for n in names:
                docs[n] = (docs.get(n, "") + " " + line.strip()).strip()
    return docs


def _config_groups():
    from .engine.config import Comm, Eval
    from .training import TrainConfig

    return (("train", TrainConfig, "local training (fl.Train)"),
            ("comm", Comm, "communication (fl.Comm)"),
            ("evaluation", Eval, "evaluation (fl.Eval)"))


def _keywords() -> dict[tuple[str, str], str]:
    """(group, field) -> the ``fl.run`` keyword that fills it (the CLI flag, dashed)."""
    from .engine.config import SHORTHANDS

    return {where: keyword for keyword, where in SHORTHANDS.items()}


def _plain(text: str) -> str:
    """A docstring's reST as plain text for ``--help``: roles and literals unmarked."""
    import re

    text = re.sub(r":\w+:`~?(?:[^`<]*<)?([^`>]+)>?`", lambda m: m.group(1).split(".")[-1], text)
    return text.replace("``", "").replace("%", "%%")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`fl.Train <fedlab.training.TrainConfig>`,
    :class:`fl.Comm <fedlab.engine.config.Comm>` and :class:`fl.Eval
    <fedlab.engine.config.Eval>`, named like the ``fl.run`` keyword that fills the field
    and documented once, from the dataclass's docstring: every setting of ``fl.run``
    that these objects hold is reachable from the command line."""
    import dataclasses
    import typing

    keywords = _keywords()
    for group_name, cls, title in _config_groups():
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            flag = "--" + keywords[group_name, f.name].replace("_", "-")
            kind, help_text = hints[f.name], _plain(docs.get(f.name, ""))
            default = f.default
            if kind is bool:
                group.add_argument(flag, action="store_true", help=help_text)
            elif typing.get_origin(kind) is typing.Literal:
                group.add_argument(flag, default=default, choices=typing.get_args(kind),
                                   help=help_text)
            elif kind == int | float | None:
                group.add_argument(flag, type=count_or_fraction, default=default,
                                   metavar="K", help=help_text)
            elif typing.get_origin(kind) is tuple:
                group.add_argument(flag, type=_comma_list, default=default,
                                   metavar="A,B", help=help_text + " (comma-separated)")
            elif kind in (int, int | None, float, float | None):
                group.add_argument(flag, type=int if kind in (int, int | None) else float,
                                   default=default, help=help_text)
            else:  # a name (codecs, network profiles)
                group.add_argument(flag, default=default, metavar="NAME", help=help_text)


def config_keywords(args: argparse.Namespace) -> dict:
    """The ``fl.run`` keywords of the options made by :func:`add_config_options`."""
    return {keyword: getattr(args, keyword) for keyword in _keywords().values()}


def count_or_fraction(text: str | None) -> int | float | None:
    """``--clients-per-round``: ``"3"`` is a count, ``"0.5"`` a fraction of the sites."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"a count (3) or a fraction (0.5) of the sites, got {text!r}") from None
