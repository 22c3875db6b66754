"""Grids × seeds of runs, cached and parallel, with confidence intervals.

:func:`sweep` runs the cartesian product of a grid of run options (those of ``fedlab
run``, see :mod:`fedlab.runspec`) times seeds and returns one row per run;
:func:`sweep_summary` gives the mean, std and 95% confidence interval of the mean per
configuration. With ``out``, each finished run is stored as ``out/runs/<hash>.json``
(the hash of its full description, defaults filled in), written atomically, so a
sweep that stopped resumes where it was and a second call runs nothing.

``fl.sweep`` and ``fl.sweep_summary`` are this module's two main names; the rest are
reached with ``from fedlab.sweeps import ...``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from .runspec import describe, resolve_options
from .sweep_runs import load_record, run_id, run_one, run_parallel, store
from .sweep_stats import METRICS, sweep_summary

__all__ = ["METRICS", "expand", "load_record", "run_id", "store", "sweep", "sweep_summary"]



def expand(grid: Mapping[str, Any], seeds: Iterable[int] = (0, 1, 2),
           base: Mapping[str, Any] | None = None) -> list[tuple[dict, dict]]:
    """The runs of a sweep: (labels, full description) for each, seeds innermost.

    Parameters
    ----------
    grid : dict
        Option name -> list of values (``{"strategy": ["fedavg", "fedprox"]}``), or
        axis name -> {label: {option: value, ...}} to set several options together
        (``{"partition": {"iid": {"partition": "iid"}, "dir0.3": {"partition":
        "dirichlet", "alpha": 0.3}}}``); the frame's column holds the label.
    seeds : list of int
        The seeds of every configuration (the ``seed`` option).
    base : dict, optional
        Options every run shares.

    Raises
    ------
    ValueError
        For an unknown option or a bad value (naming it and what is allowed), an axis
        without values, two axes setting the same option, or a ``seed`` option (the
        seeds go in ``seeds``).
    """
    base, seeds = dict(base or {}), [int(s) for s in seeds]
    if "seed" in base or "seed" in grid:
        raise ValueError("set seeds with seeds=[...], not as a run option")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    axes = []
    for name, values in grid.items():
        if isinstance(values, Mapping):
            choices = [(label, dict(opts)) for label, opts in values.items()]
        elif isinstance(values, str) or not isinstance(values, Iterable):
            raise ValueError(f"grid[{name!r}] must be a list of values or a dict "
                             f"label -> options, got {values!r}")
        else:
            choices = [(_label(v), {name: v}) for v in values]
        if not choices:
            raise ValueError(f"grid[{name!r}] has no values")
        axes.append((name, choices))
    keys = [set().union(*(opts for _, opts in choices)) for _, choices in axes]
    for (a, ka), (b, kb) in itertools.combinations(zip(grid, keys, strict=True), 2):
        if ka & kb:
            raise ValueError(f"grid axes {a!r} and {b!r} both set {sorted(ka & kb)}")
    runs = []
    for combo in itertools.product(*(choices for _, choices in axes)):
        labels = {name: label for (name, _), (label, _) in zip(axes, combo, strict=True)}
        spec = {**base, **{k: v for _, opts in combo for k, v in opts.items()}}
        for seed in seeds:
            runs.append(({**labels, "seed": seed},
                         describe(resolve_options({**spec, "seed": seed}))))
    return runs


def _label(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def sweep(grid: Mapping[str, Any], seeds: Iterable[int] = (0, 1, 2),
          base: Mapping[str, Any] | None = None, *, out: str | Path | None = None,
          workers: int = 1, backend: Literal["processes", "ray"] = "processes",
          metrics: Sequence[str] = METRICS, progress: bool = True) -> pd.DataFrame:
    """Run every configuration of ``grid`` for every seed; one row per run.

    Parameters
    ----------
    grid, seeds, base
        The runs, as for :func:`expand`: ``grid`` the swept options, ``seeds`` the
        seeds, ``base`` the fixed options (the options of ``fedlab run``; see
        :mod:`fedlab.runspec`). Every description is checked before any run starts.
    out : path, optional
        Cache folder: each finished run is ``out/runs/<hash>.json`` (description,
        metrics, summary, final per-site numbers, wall time); cached runs are not run
        again, so a stopped sweep resumes. Without it nothing is stored.
    workers : int
        1: one run after another in this process. N > 1: N worker processes (spawned,
        one torch thread each).
    backend : {"processes", "ray"}
        What runs the workers when ``workers > 1``: a process pool, or Ray tasks
        (``ray`` must be installed; a local Ray instance is started if none is).
    metrics : list of str
        Columns of the frame: keys of ``History.summary()`` (``accuracy``, ``auc``,
        ``loss``, ``psnr``, ...) and ``site_mean``, ``site_worst`` (mean and worst
        per-site test accuracy, or PSNR for reconstruction); NaN where a run lacks one.
    progress : bool
        A progress bar over runs.

    Returns
    -------
    DataFrame
        Columns: the grid's axes, ``seed``, the ``metrics``, ``wall_s`` (seconds of the
        run when it ran) and ``cached`` (True when read from ``out``).

    Raises
    ------
    ValueError
        For a bad description (before anything runs). A run that fails stops the sweep
        with its error (noting the run); the runs finished so far stay in ``out``.
    """
    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if backend not in ("processes", "ray"):
        raise ValueError(f"backend must be 'processes' or 'ray', got {backend!r}")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    runs = expand(grid, seeds, base)
    folder = Path(out) if out is not None else None
    records = [load_record(folder, desc) for _, desc in runs]
    todo = {run_id(desc): desc for (_, desc), rec in zip(runs, records, strict=True)
            if rec is None}
    done: dict[str, dict] = {}

    def finished(record: dict) -> None:
        done[run_id(record["description"])] = record
        if folder is not None:
            store(folder, **record)
        bar.update()

    with tqdm(total=len(runs), initial=len(runs) - len(todo), disable=not progress,
              desc="sweep", unit="run") as bar:
        _execute(list(todo.values()), workers, backend, finished)
    rows = []
    for (labels, desc), rec in zip(runs, records, strict=True):
        record = rec or done[run_id(desc)]
        rows.append({**labels, **{m: float(record["metrics"].get(m, float("nan")))
                                  for m in metrics},
                     "wall_s": record.get("wall_s"), "cached": rec is not None})
    frame = pd.DataFrame(rows, columns=[*grid, "seed", *metrics, "wall_s", "cached"])
    frame.attrs.update(options=list(grid), metrics=list(metrics))
    return frame


def _execute(todo: list[dict], workers: int, backend: str,
             finished: Callable[[dict], None]) -> None:
    if workers == 1:
        for desc in todo:
            try:
                finished(run_one(desc))
            except Exception as err:
                _noted(err, desc)
                raise
        return
    run_parallel(todo, workers, backend, finished, _noted)


def _noted(err: BaseException, description: dict) -> BaseException:
    err.add_note(f"in the sweep's run {description}; the runs finished before it are "
                 "cached (with out=): run the sweep again to resume")
    return err
