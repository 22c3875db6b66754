"""A run described by its options: data -> sites -> :func:`fedlab.run` -> History.

The one path from a *run description* (the options of ``fedlab run``, as a dict or an
``argparse`` namespace) to a History, shared by ``fedlab run`` and :func:`fedlab.sweep`.
The options, their defaults and their allowed values are those of the ``fedlab run``
parser (:func:`fedlab.options.add_run_options`), so a sweep accepts exactly what the
command line does, under the same names with underscores: ``dataset``, ``sites``,
``partition``, ``alpha``, ``strategy``, ``param`` (a dict ``{"mu": 0.1}`` or
``["mu=0.1"]``; ``param.mu`` sets one), ``rounds``, ``model``, ``lr``,
``local_epochs``, ``batch_size``, ``seed``, ...
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

from .options import add_run_options, config_keywords, partitioner, strategy_from

__all__ = ["Prepared", "acquisitions", "describe", "execute", "prepare", "resolve_options"]

#: options that say where or how loudly a run happens, not what it computes
NOT_DESCRIBING = ("data_dir", "out", "resume", "quiet", "func", "command")


@functools.lru_cache(maxsize=1)
def _actions() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    add_run_options(parser)
    return {a.dest: a for a in parser._actions}


def _typed(action: argparse.Action, name: str, value: Any) -> Any:
    """``value`` for option ``name`` checked (and converted) like the command line would."""
    if action.nargs == 0:  # a flag
        if not isinstance(value, bool):
            raise ValueError(f"run option {name} is a flag: true or false, got {value!r}")
        return value
    if action.dest == "param":
        items = value.items() if isinstance(value, Mapping) else None
        return [f"{k}={v}" for k, v in items] if items is not None else [str(v) for v in value]
    kind = action.type
    if value is None and action.default is None:
        return None
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and value != int(value)):
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"run option {name} must be {what}, got {value!r}")
        value = kind(value)
    elif kind is not None:  # the command line's own parser of the option's text
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        try:
            value = kind(text)
        except (ValueError, argparse.ArgumentTypeError) as err:
            raise ValueError(f"run option {name}={value!r}: {err}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # e.g. acceleration = 4
    elif not isinstance(value, str):
        raise ValueError(f"run option {name} must be a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"run option {name}={value!r}: expected one of {list(action.choices)}")
    return value


def resolve_options(spec: Mapping[str, Any]) -> argparse.Namespace:
    """The full, checked options of the run described by ``spec``.

    ``spec`` maps option names (``fedlab run``'s, with ``_`` or ``-``) to values; the
    others take their command-line defaults. Raises ValueError naming the option and
    what it allows for an unknown name or a bad value, before anything is loaded or
    trained (partition, strategy, training and reconstruction settings are built once
    to be checked).
    """
    actions = _actions()
    values = {dest: a.default for dest, a in actions.items() if dest != "help"}
    params = {}
    for key, value in spec.items():
        key = key.replace("-", "_")
        if key.startswith("param."):
            params[key[len("param."):]] = value
            continue
        if key not in values or key in NOT_DESCRIBING:
            allowed = sorted(k for k in values if k not in NOT_DESCRIBING)
            raise ValueError(f"unknown run option {key!r}; the options are {allowed}, and "
                             "param.NAME for one strategy parameter")
        values[key] = _typed(actions[key], key, value)
    values["param"] = sorted([*values["param"], *(f"{k}={v}" for k, v in params.items())])
    args = argparse.Namespace(**values, out=None, resume=False, quiet=True)
    _check(args)
    return args


def _check(args: argparse.Namespace) -> None:
    from .engine.config import resolve

    partitioner(args)
    strategy_from(args.strategy, args.param, args.combine)
    resolve(None, None, None, config_keywords(args))
    if args.task == "reconstruction":
        acquisitions(args)
    elif args.acceleration is not None:
        raise ValueError("--acceleration needs --task reconstruction")


def describe(args: argparse.Namespace) -> dict[str, Any]:
    """The run's description ``args`` as JSON-safe values: every option that decides
    what it computes (not where its data lives, nor its output)."""
    import json

    out = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_DESCRIBING}
    return json.loads(json.dumps(out, default=str))


@functools.lru_cache(maxsize=4)
def _dataset(name: str, root: str | None, seed: int, progress: bool, env: str | None):
    from . import data

    if name == "synthetic":
        return data.make_synthetic(seed=seed)
    return data.load(name, root=root, progress=progress)


@dataclasses.dataclass
class Prepared:
    """A run ready to start: its options, data, sites, model name and strategy.

    Parameters
    ----------
    options : argparse.Namespace
        The full options (:func:`resolve_options`, or ``fedlab run``'s parsed arguments).
    dataset, sites, model, strategy
        What :func:`prepare` built from them.
    """

    options: argparse.Namespace
    dataset: Any
    sites: Any
    model: str
    strategy: Any

    def setting(self) -> dict[str, Any]:
        """What ``summary.json`` records of the run's setting besides the History."""
        a = self.options
        return {"dataset": self.dataset.name, "task": a.task, "partition": self.sites.scheme,
                "sites": a.sites, "topology": a.topology}

    def run(self, *, run_dir: Any = None, resume: bool = False, progress: bool = False):
        """:func:`fedlab.run` on these sites: the run's History (``run_dir``, ``resume``
        and ``progress`` as there)."""
        from .simulation import run

        a = self.options
        return run(self.sites, model=self.model, strategy=self.strategy, rounds=a.rounds,
                   seed=a.seed, topology=a.topology, executor=a.executor, device=a.device,
                   progress=progress, run_dir=run_dir, resume=resume, **config_keywords(a))


def prepare(options: Mapping[str, Any] | argparse.Namespace, progress: bool = False) -> Prepared:
    """Load the data, split it into sites and build the strategy of a run.

    ``options`` is a description (checked with :func:`resolve_options`) or a full
    namespace; ``progress`` shows a bar while a dataset downloads.
    """
    import numpy as np

    from . import data

    args = options if isinstance(options, argparse.Namespace) else resolve_options(options)
    dataset = _dataset(args.dataset, args.data_dir, args.seed, progress,
                       os.environ.get("FEDLAB_DATA"))
    sizes = data.QuantitySkew(skew=args.quantity_skew) if (
        args.quantity_skew and args.partition != "quantity") else None
    shift = data.AcquisitionShift(strength=args.shift) if args.shift else None
    sites = data.split(dataset, n_sites=args.sites, scheme=partitioner(args), sizes=sizes,
                       shift=shift, seed=args.seed)
    model = args.model or ("recon-unet-dc" if args.task == "reconstruction" else "cnn")
    if args.task == "reconstruction":
        sites = data.undersample(sites, acquisitions(args), seed=args.seed)
    elif args.acceleration is not None:
        raise ValueError("--acceleration needs --task reconstruction")
    strategy = strategy_from(args.strategy, args.param, args.combine)
    if getattr(strategy, "public", False) is None:  # FedMD: the public set all sites hold
        val = dataset.val
        strategy = dataclasses.replace(strategy, public=val.subset(np.arange(min(500, len(val)))))
    return Prepared(args, dataset, sites, model, strategy)


def execute(options: Mapping[str, Any] | argparse.Namespace, **run: Any):
    """The History of the run described by ``options`` (see :func:`prepare`); ``run``
    holds :meth:`Prepared.run`'s keywords (``run_dir``, ``resume``, ``progress``)."""
    return prepare(options).run(**run)


def acquisitions(args: argparse.Namespace) -> list:
    """One MRI protocol per site from ``--acceleration`` (one value for every site, or
    one per site), ``--mask`` and ``--noise`` (the fields of ``args``)."""
    from .data import Acquisition

    text = args.acceleration or "4"
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--acceleration must be numbers >= 1, e.g. 4 or 2,4,8, got "
                         f"{text!r}") from None
    if len(values) not in (1, args.sites):
        raise ValueError(f"--acceleration takes one value or one per site ({args.sites}), got "
                         f"{len(values)}")
    values = values * args.sites if len(values) == 1 else values
    return [Acquisition(acceleration=a, mask=args.mask, noise_std=args.noise) for a in values]
