"""The command line's options that are built from fedlab's own objects: the local
training options from :class:`~fedlab.training.TrainConfig`'s fields (documented once,
in its docstring), strategies from their dataclass fields, partitions by name."""

from __future__ import annotations

import argparse

__all__ = ["PARTITIONS", "add_train_options", "count_or_fraction", "field_docs",
           "partitioner", "strategy_from", "train_keywords"]

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


def strategy_from(name: str, params: list[str]):
    """A strategy from its name and ``KEY=VALUE`` hyper-parameters, typed by its fields."""
    import dataclasses

    from .strategies import get

    cls = type(get(name))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
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
        kwargs[key] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
    return cls(**kwargs)


#: TrainConfig field -> the keyword of fl.run (and the CLI flag, with dashes)
_TRAIN_KEYWORDS = {"epochs": "local_epochs", "steps": "local_steps"}


def field_docs(cls) -> dict[str, str]:
    """The first sentence of each parameter in a numpy-style class docstring."""
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


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`~fedlab.training.TrainConfig`, documented once,
    from the dataclass: every local-training setting of ``fl.run`` is reachable."""
    import dataclasses
    import typing

    from .training import TrainConfig

    docs = field_docs(TrainConfig)
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("local training (fedlab.training.TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + _TRAIN_KEYWORDS.get(f.name, f.name).replace("_", "-")
        kind, help_text = hints[f.name], docs.get(f.name, "")
        if kind is bool:
            group.add_argument(flag, action="store_true", help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, default=f.default, choices=typing.get_args(kind),
                               help=help_text)
        else:
            base = int if kind in (int, int | None) else float
            group.add_argument(flag, type=base, default=f.default, help=help_text)


def train_keywords(args: argparse.Namespace) -> dict:
    """The ``fl.run`` keywords of the options made by :func:`add_train_options`."""
    import dataclasses

    from .training import TrainConfig

    names = [_TRAIN_KEYWORDS.get(f.name, f.name) for f in dataclasses.fields(TrainConfig)]
    return {n: getattr(args, n) for n in names}


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
            raise ValueError(f"--clients-per-round must be a count (3) or a fraction (0.5), "
                             f"got {text!r}") from None
