"""The settings of a run, grouped: how sites train (:class:`~fedlab.training.Train`),
how messages travel (:class:`Comm`) and how the run is scored (:class:`Eval`).

:func:`fedlab.run` takes them as objects (``train=fl.Train(lr=0.05)``) or through the
plain keywords the lessons use (``lr=0.05``), which only fill the same objects: the
engine sees one :class:`~fedlab.training.Train`, one :class:`Comm`, one :class:`Eval`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..training import TrainConfig

__all__ = ["Comm", "Eval", "SHORTHANDS", "resolve"]


@dataclass(frozen=True)
class Comm:
    """How messages travel between the parties of a run.

    Parameters
    ----------
    uplink, downlink : str or Codec, optional
        How messages are encoded site -> server and server -> site (default: as they
        are): a :class:`~fedlab.comm.Codec` or a name: identity, fp16, bf16, int8,
        int8-sr, topk:F[:N] or topk-ef:F[:N] (F a fraction; tensors under N entries,
        default 1024, are sent whole), several joined by '|' (see
        :mod:`fedlab.comm.codecs`).
    clients_per_round : int or float, optional
        Sites sampled (seeded) to take part in each round: a count (3) or a fraction
        of the sites (0.5).
    network : str, Link or dict, optional
        A simulated network (:mod:`fedlab.comm.network`), a profile name:
        hospital-fibre, hospital-vpn, rural-clinic, satellite, datacenter, or mixed;
        seconds per round in ``History.rounds``.
    availability : str, Availability or dict, optional
        When sites are online, on the network's simulated clock
        (:mod:`fedlab.comm.availability`): a profile for every site (always,
        night-off, office-hours, flaky), or per site ("site-3=night-off"); needs
        network.
    """

    uplink: Any = None
    downlink: Any = None
    clients_per_round: int | float | None = None
    network: Any = None
    availability: Any = None


@dataclass(frozen=True)
class Eval:
    """How a run is scored.

    Parameters
    ----------
    every : int
        Evaluate every this many rounds (the initial model and the last round always).
    splits : tuple of str
        The splits scored after a round: test (default), val, train.
    """

    every: int = 1
    splits: tuple[str, ...] = ("test",)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {self.every!r}")
        splits = (self.splits,) if isinstance(self.splits, str) else tuple(self.splits)
        bad = [s for s in splits if s not in ("train", "val", "test")]
        if not splits or bad:
            raise ValueError(f"eval_splits must be a non-empty sequence of 'train', 'val', "
                             f"'test', got {self.splits!r}")
        object.__setattr__(self, "splits", splits)


#: ``fl.run`` keyword -> (group, field): the plain keywords that fill the objects
SHORTHANDS: dict[str, tuple[str, str]] = {
    **{("local_" + f.name if f.name in ("epochs", "steps") else f.name): ("train", f.name)
       for f in fields(TrainConfig)},
    **{f.name: ("comm", f.name) for f in fields(Comm)},
    "eval_every": ("evaluation", "every"), "eval_splits": ("evaluation", "splits"),
}


def resolve(train: TrainConfig | None, comm: Comm | None, evaluation: Eval | None,
            shorthands: dict[str, Any]) -> tuple[TrainConfig, Comm, Eval]:
    """The three objects of a run: those given (or the defaults), with the plain
    keywords in ``shorthands`` filled in."""
    unknown = sorted(set(shorthands) - set(SHORTHANDS))
    if unknown:
        raise TypeError(f"run() got unexpected keyword argument(s) {unknown}; besides its "
                        f"parameters it takes {sorted(SHORTHANDS)}")
    groups = {"train": train or TrainConfig(), "comm": comm or Comm(),
              "evaluation": evaluation or Eval()}
    for name, cls in (("train", TrainConfig), ("comm", Comm), ("evaluation", Eval)):
        if not isinstance(groups[name], cls):
            raise TypeError(f"{name} must be a fedlab.{cls.__name__.replace('Config', '')}, "
                            f"got {type(groups[name]).__name__}")
        changes = {f: v for k, v in shorthands.items()
                   for g, f in [SHORTHANDS[k]] if g == name}
        if changes:
            groups[name] = replace(groups[name], **changes)
    return groups["train"], groups["comm"], groups["evaluation"]
