"""The pieces of a run around its loop: checks of the arguments, the recorded config,
the end-of-round callbacks."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from ..comm.codecs import Identity
from ..history import GLOBAL, History
from ..sites import Site
from ..state import clone as clone_tree
from ..strategies.base import State, Strategy
from ..strategies.robust import Rule
from ..strategies.wrapper import wraps

__all__ = ["Callback", "check_arguments", "check_secagg_codec", "clone", "end_of_round",
           "params", "run_config", "clock"]

Callback = Callable[[History, int], Any]


def check_arguments(sites: Sequence, rounds: Any, resume: bool, run_dir: Any) -> None:
    """Clear errors for arguments of :func:`fedlab.run` that no later step checks."""
    if not sites:
        raise ValueError("sites must hold at least one Site")
    for i, site in enumerate(sites):
        if not isinstance(site, Site):
            raise TypeError(f"sites must hold Site objects (fl.data.split makes them), got "
                            f"{type(site).__name__} at position {i}")
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        raise ValueError(f"sites must have unique names, got {names}")
    if any(tuple(s.classes) != tuple(sites[0].classes) for s in sites):
        raise ValueError(f"sites must share one class list, got "
                         f"{ {s.name: tuple(s.classes) for s in sites} }")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    if resume and run_dir is None:
        raise ValueError("resume=True needs run_dir")


def clock(comm, names: list[str], seed: int):
    """The run's network (a Link per site, or None) and its sites' availability (or
    None); availability needs a network, whose simulated clock its times are on."""
    from ..comm.availability import get_availability
    from ..comm.network import get_network

    links = get_network(comm.network, names) if comm.network is not None else None
    avail = None
    if comm.availability is not None:
        if links is None:
            raise ValueError("availability needs network= (its times are on the network's "
                             "simulated clock)")
        avail = get_availability(comm.availability, names, seed)
    return links, avail


def check_secagg_codec(strategy: Strategy, uplink) -> None:
    """Masks only cancel when the server sums exactly what the sites masked."""
    if wraps(strategy, "secagg") and not isinstance(uplink, Identity):
        raise ValueError(f"uplink={uplink} cannot be combined with secure aggregation: "
                         "lossy codecs break the pairwise masks; use uplink=None")


def run_config(**values: Any) -> dict[str, Any]:
    """The run's arguments as JSON-safe values (``config.json``, ``History.config``)."""
    for key in ("strategy_params", "topology_params", "train"):
        if key in values and not isinstance(values[key], dict):
            values[key] = params(values[key])
    return json.loads(json.dumps(values, default=str))


def params(obj: Any) -> Any:
    """A dataclass's fields as plain values, recursively (like :func:`dataclasses.asdict`),
    a robust rule as its name with its parameters, and no ``combine`` entry when the
    strategy has none, nor a field marked ``omit_default`` at its default (so the
    configs of plain runs read as they always did)."""
    if isinstance(obj, Rule):
        return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: params(getattr(obj, f.name)) for f in fields(obj)
                if not (f.name == "combine" and getattr(obj, f.name) is None)
                and not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, list | tuple):
        return type(obj)(params(v) for v in obj)
    return obj


def clone(state: State) -> State:
    """A detached copy of every tensor of ``state`` (nested states too)."""
    return clone_tree(state)


def end_of_round(history: History, rnd: int, bar, progress: bool,
                 callbacks: Sequence[Callback]) -> bool:
    """Show the round's accuracy (PSNR for a reconstruction) on the bar and run the
    callbacks; True to stop the run."""
    if progress and history.metrics and history.metrics[-1]["round"] == rnd:
        psnr = history.final("psnr")
        bar.set_postfix(**({"psnr": f"{psnr:.2f}"} if np.isfinite(psnr) else
                           {"acc": f"{history.final('accuracy'):.3f}"}))
    if any(cb(history, rnd) is True for cb in callbacks):
        history.events.append({"round": rnd, "site": GLOBAL, "event": "stopped by callback"})
        return True
    return False
