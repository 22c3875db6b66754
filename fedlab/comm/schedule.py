"""Reading a run on its simulated clock: each site's jobs, each update's arrival.

Works for synchronous runs with a network (every round waits for its slowest
participant) and for asynchronous ones (FedAsync, FedBuff: the server acts on arrivals),
so the two can be drawn on one time axis (:mod:`fedlab.comm.plots`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..history import GLOBAL, History
from .network import timeline

__all__ = ["arrivals", "jobs", "elapsed", "time_to_target"]

_JOB = ["round", "site", "start_s", "down_s", "compute_s", "up_s", "end_s"]


def arrivals(history: History) -> pd.DataFrame:
    """One row per update an asynchronous run used: the ``version`` it went into, the
    ``site``, its job's ``start_s``, ``down_s``, ``compute_s``, ``up_s``, ``arrival_s``,
    its ``staleness`` (versions made since the one it started from) and its ``weight``.

    Parameters
    ----------
    history : History
        An asynchronous run (``strategy="fedasync"`` or ``"fedbuff"``).
    """
    rows = [{"version": r["round"], **a} for r in history.rounds for a in r.get("arrivals", [])]
    if not rows and history.rounds and "arrivals" not in history.rounds[0]:
        raise ValueError("history is not an asynchronous run (no arrivals recorded): use "
                         "strategy='fedasync' or 'fedbuff'")
    return pd.DataFrame(rows, columns=["version", "site", "start_s", "down_s", "compute_s",
                                       "up_s", "arrival_s", "staleness", "weight"])


def jobs(history: History) -> pd.DataFrame:
    """Each site's jobs on the simulated clock: ``round`` (the version an asynchronous
    update went into), ``site``, ``start_s``, ``down_s``, ``compute_s``, ``up_s``, ``end_s``
    (when its update reached the server).

    Parameters
    ----------
    history : History
        A run with a network (synchronous or asynchronous).
    """
    if history.rounds and "arrivals" in history.rounds[0]:
        a = arrivals(history).rename(columns={"version": "round", "arrival_s": "end_s"})
        return a[_JOB]
    if history.config.get("network") is None:
        raise ValueError("history has no simulated clock: run it with network=")
    t = timeline(history)
    start = {r["round"]: r["sim_total_s"] - r["sim_s"] + r.get("wait_s", 0.0)
             for r in history.rounds}
    t["start_s"] = t["round"].map(start)
    t["end_s"] = t["start_s"] + t["total_s"]
    return t[_JOB]


def elapsed(history: History) -> pd.Series:
    """Simulated seconds at the end of each round (0 before round 1), index: round.

    Parameters
    ----------
    history : History
        A run with a network.
    """
    if history.rounds and "sim_total_s" not in history.rounds[0]:
        raise ValueError("history has no simulated clock: run it with network=")
    out = pd.Series({0: 0.0, **{r["round"]: float(r["sim_total_s"]) for r in history.rounds}})
    out.index.name = "round"
    return out


def time_to_target(history: History, target: float, metric: str = "accuracy") -> float:
    """Simulated seconds until the global test ``metric`` first reaches ``target`` (NaN
    if it never does).

    Parameters
    ----------
    history : History
        A run with a network.
    target : float
        The value to reach (``>=``).
    metric : str
        A global test metric.
    """
    rounds, values = history.series(metric, GLOBAL)
    clock = elapsed(history)
    hit = [int(r) for r, v in zip(rounds, values, strict=True) if v >= target]
    return float(clock[hit[0]]) if hit else float(np.nan)
