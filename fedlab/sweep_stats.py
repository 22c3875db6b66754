"""The statistics of a sweep's runs: the mean of a metric per configuration with the
confidence interval of the mean (Student's t with ``n - 1`` degrees of freedom).

Apart from :mod:`fedlab.sweeps` (which runs them) so that figures can summarise a frame
without importing the machinery that runs federations.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["METRICS", "sweep_summary"]

#: the default columns of a sweep's frame: global test accuracy and AUC, mean and worst
#: per-site test accuracy (per-site PSNR for reconstruction runs)
METRICS = ("accuracy", "auc", "site_mean", "site_worst")
_NOT_CONFIG = ("seed", "wall_s", "cached")


def sweep_summary(frame: pd.DataFrame, by: Sequence[str] | None = None,
                  metric: str = "accuracy", level: float = 0.95) -> pd.DataFrame:
    """Mean, std, n and the confidence interval of the mean of ``metric`` per
    configuration of a :func:`sweep` frame.

    The interval is ``mean ± t * std / sqrt(n)`` with ``t`` the Student t quantile of
    ``(1 + level) / 2`` at ``n - 1`` degrees of freedom (``std`` the sample standard
    deviation); with one run (n = 1) ``std``, ``half_width`` and the bounds are NaN.

    Parameters
    ----------
    frame : DataFrame
        One row per run (:func:`sweep`'s output, or a CSV of it).
    by : list of str, optional
        The columns that make a configuration (default: the grid's axes; for a frame
        read back from CSV, the columns before ``seed``).
    metric : str
        The column summarised.
    level : float
        Coverage of the interval, in (0, 1) (default 0.95).

    Returns
    -------
    DataFrame
        Columns ``by``, then n, mean, std, half_width, low, high; one row per
        configuration, in the order they first appear.
    """
    from scipy import stats

    if metric not in frame:
        raise ValueError(f"metric {metric!r} is not a column; the columns are "
                         f"{list(frame.columns)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if by is None and frame.attrs.get("options") is not None:
        by = frame.attrs["options"]
    elif by is None:  # a frame read back from CSV: its axes come before "seed"
        cols = list(frame.columns)
        by = cols[:cols.index("seed")] if "seed" in cols else [
            c for c in cols if c not in {*_NOT_CONFIG, *METRICS, metric}]
    by = list(by)
    groups = frame.groupby(by, sort=False, dropna=False)[metric] if by else \
        frame.assign(_all=0).groupby("_all")[metric]
    table = groups.agg(n="count", mean="mean", std="std").reset_index()
    table = table.drop(columns="_all", errors="ignore")
    t = stats.t.ppf((1 + level) / 2, (table["n"] - 1).where(table["n"] > 1))
    table["half_width"] = t * table["std"] / table["n"] ** 0.5
    table["low"] = table["mean"] - table["half_width"]
    table["high"] = table["mean"] + table["half_width"]
    return table
