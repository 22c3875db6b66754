"""The record of a run: metrics per round, site and split; the bytes ledger; timings."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["History", "GLOBAL", "COLLAPSE_SHARE", "CollapsedModelWarning"]

GLOBAL = "global"
# A model that gives one answer for at least this share of the test images has collapsed
# to a constant predictor: its accuracy is the class mix of the test set, not learning.
COLLAPSE_SHARE = 0.98


class CollapsedModelWarning(UserWarning):
    """The final model predicts (almost) one class for every test image."""
TIMING_KEYS = ("wall_s", "train_s", "eval_s")
_METRICS = ("loss", "accuracy", "auc", "dice", "psnr", "ssim", "nmse")  # NaN stored as null
#: what the summary of a reconstruction run adds
RECONSTRUCTION_SUMMARY = ("psnr", "ssim", "nmse", "psnr_zero_filled", "ssim_zero_filled")
#: the version of the JSON layout :meth:`History.save` writes
SCHEMA = 1
Table = Literal["metrics", "ledger", "rounds", "events"]


class History:
    """Everything a run measured, as plain lists of rows (one dict per row).

    Tables
    ------
    metrics : round, site (a site name or ``"global"``), split, loss, accuracy, auc, n;
        for segmentation (mask labels) also dice and dice_<class>
    ledger : round, site, direction (``"down"``/``"up"``), bytes (what crossed the wire),
        raw_bytes (the same content before any codec), what (``"model"``, ``"keys"``, ...),
        peer (the other end: ``"server"`` or a site name) — one row per message
    rounds : round, participants, sites (their names), local_samples (site -> samples
        trained on), wall_s, train_s, eval_s; with a network model sim_s, sim_total_s
        (simulated seconds: the round, all rounds so far) and straggler (the slowest
        site); plus whatever the strategy reports for the round
        (:meth:`fedlab.strategies.Strategy.round_report`)
    events : round, site, event — e.g. an update excluded for non-finite values

    Parameters
    ----------
    config : dict, optional
        The run's arguments as JSON-safe values (what ``config.json`` holds); copied.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self.metrics: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        #: the global model's state after the last round (set by ``run``, not saved)
        self.final_state: dict | None = None
        #: the state each site evaluates with after the last round: the global state
        #: for FedAvg, the site's own model for local-only or personalised runs
        #: (set by ``run``, not saved)
        self.site_states: dict[str, dict] = {}

    def __repr__(self) -> str:
        s = self.summary() if self.metrics else {}
        return (f"History(strategy={self.config.get('strategy')!r}, rounds={len(self.rounds)}, "
                f"accuracy={s.get('accuracy', float('nan')):.4f}, "
                f"bytes_up={s.get('bytes_up', 0)})")

    # -- recording ----------------------------------------------------------------
    def log_metrics(self, round: int, site: str, split: str, values: dict[str, float]) -> None:
        self.metrics.append({"round": round, "site": site, "split": split, **values})

    def log_message(self, round: int, site: str, direction: str, nbytes: int,
                    raw_bytes: int | None = None, what: str = "model",
                    peer: str = "server") -> None:
        """Record one message. ``direction`` is seen from ``site``: ``"up"`` = sent by
        it, ``"down"`` = received by it; ``nbytes`` is the encoded (on-the-wire) size and
        ``raw_bytes`` the size before encoding (defaults to ``nbytes``)."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        self.ledger.append({"round": round, "site": site, "direction": direction,
                            "bytes": int(nbytes),
                            "raw_bytes": int(nbytes if raw_bytes is None else raw_bytes),
                            "what": what, "peer": peer})

    # -- reading ------------------------------------------------------------------
    @property
    def sites(self) -> list[str]:
        """Site names that have metrics, in first-seen order."""
        return list(dict.fromkeys(r["site"] for r in self.metrics if r["site"] != GLOBAL))

    @property
    def last_round(self) -> int:
        return self.rounds[-1]["round"] if self.rounds else 0

    def to_frame(self, table: Table = "metrics"):
        """One table as a pandas DataFrame."""
        if table not in ("metrics", "ledger", "rounds", "events"):
            raise ValueError(f"table must be metrics, ledger, rounds or events, got {table!r}")
        return pd.DataFrame(getattr(self, table))

    def series(self, metric: str = "accuracy", site: str = GLOBAL,
               split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(rounds, values)`` of one metric for one site (or ``"global"``) and split."""
        rows = [r for r in self.metrics if r["site"] == site and r["split"] == split]
        if not rows:
            raise KeyError(f"no metrics for site={site!r}, split={split!r}")
        return (np.array([r["round"] for r in rows]),
                np.array([r.get(metric, math.nan) for r in rows], dtype=float))

    def final(self, metric: str = "accuracy", site: str = GLOBAL, split: str = "test") -> float:
        """The last recorded value of ``metric``."""
        return float(self.series(metric, site, split)[1][-1])

    def per_site(self, metric: str = "accuracy", round: int | None = None,
                 split: str = "test") -> pd.Series:
        """``metric`` of every site at ``round`` (default: the last evaluated round)."""
        rows = [r for r in self.metrics if r["split"] == split and r["site"] != GLOBAL]
        if not rows:
            raise KeyError(f"no per-site metrics for split={split!r}")
        rnd = max(r["round"] for r in rows) if round is None else round
        return pd.Series({r["site"]: r[metric] for r in rows if r["round"] == rnd},
                         name=metric, dtype=float)

    def bytes(self, direction: str | None = None) -> int:
        """Total bytes in the ledger, optionally for ``"up"`` or ``"down"`` only."""
        return sum(r["bytes"] for r in self.ledger if direction in (None, r["direction"]))

    def summary(self, split: str = "test") -> dict[str, Any]:
        """Final global metrics plus totals: the run in one dict."""
        out: dict[str, Any] = {m: self.final(m, GLOBAL, split) for m in ("accuracy", "auc", "loss")}
        out.update(rounds=self.last_round, bytes_up=self.bytes("up"),
                   bytes_down=self.bytes("down"),
                   wall_s=round(sum(r["wall_s"] for r in self.rounds), 3),
                   strategy=self.config.get("strategy"), n_sites=len(self.sites))
        if self.rounds and "sim_total_s" in self.rounds[-1]:  # run with a network model
            out["sim_s"] = round(self.rounds[-1]["sim_total_s"], 3)
        if np.isfinite(self.final("psnr", GLOBAL, split)):  # a reconstruction run: no classes
            out = {m: self.final(m, GLOBAL, split) for m in RECONSTRUCTION_SUMMARY} | {
                k: v for k, v in out.items() if k not in ("accuracy", "auc")}
        share = self.final("top_share", GLOBAL, split)
        if np.isfinite(share):  # classification: name a constant predictor
            out.update(majority=self.final("majority", GLOBAL, split), top_share=share,
                       collapsed=bool(share >= COLLAPSE_SHARE))
        return out

    def warn_if_collapsed(self, split: str = "test") -> bool:
        """Warn (:class:`CollapsedModelWarning`) when the final model answers one class for
        (almost) every test image; returns whether it did."""
        s = self.summary(split)
        if s.get("collapsed"):
            warnings.warn(
                f"the final model gives one answer for {s['top_share']:.1%} of the {split} "
                f"images: it has collapsed to a constant predictor, and its accuracy "
                f"{s['accuracy']:.3f} is the class mix (majority baseline "
                f"{s['majority']:.3f}), not something it learned", CollapsedModelWarning,
                stacklevel=3)
        return bool(s.get("collapsed"))

    # -- persistence --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The History as plain JSON-ready values, with its schema version."""
        return {"schema": SCHEMA, "config": self.config, "metrics": self.metrics,
                "ledger": self.ledger, "rounds": self.rounds, "events": self.events}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """A History from ``data``, what :meth:`to_dict` returned (no ``schema``: version
        1); another schema version, or a dict that is no History, is a ValueError."""
        tables = {"config", "metrics", "ledger", "rounds", "events"}
        if not isinstance(data, dict) or not tables & set(data):
            keys = f" with keys {sorted(data)[:5]}" if isinstance(data, dict) else ""
            raise ValueError(f"not a fedlab History: expected a JSON object with some of "
                             f"{sorted(tables)}, got {type(data).__name__}{keys}")
        if data.get("schema", 1) != SCHEMA:
            raise ValueError(f"a History of schema {data.get('schema')!r}; this fedlab reads "
                             f"schema {SCHEMA} (written by another version of fedlab)")
        h = cls(data.get("config"))
        for name in ("metrics", "ledger", "rounds", "events"):
            setattr(h, name, [_nan_in(dict(r)) for r in data.get(name, [])])
        return h

    def save(self, path: str | Path) -> Path:
        """Write the History as JSON (NaN stored as null); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(_nan_out(self.to_dict()), indent=1))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # on disk before the rename: whole or absent
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a History written by :meth:`save`.

        Parameters
        ----------
        path : path
            A ``history.json``; a damaged or foreign file is a ValueError naming it.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON (truncated or damaged?): {err}") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def truncate(self, last_round: int) -> History:
        """A copy holding rounds ``<= last_round`` only (used when resuming)."""
        h = History(self.config)
        for name in ("metrics", "ledger", "rounds", "events"):
            setattr(h, name, [dict(r) for r in getattr(self, name) if r["round"] <= last_round])
        return h

    def equals(self, other: History, ignore_timing: bool = True) -> bool:
        """Same config, metrics, ledger and events (timings ignored by default)."""
        a, b = _nan_out(self.to_dict()), _nan_out(other.to_dict())
        if ignore_timing:
            for d in (a, b):
                d["rounds"] = [{k: v for k, v in r.items() if k not in TIMING_KEYS}
                               for r in d["rounds"]]
        return a == b


def _nan_out(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _nan_out(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_out(v) for v in obj]
    return obj


def _nan_in(row: dict[str, Any]) -> dict[str, Any]:
    for k in row:
        if row[k] is None and k.startswith(_METRICS):
            row[k] = float("nan")
        elif row[k] in ("inf", "-inf"):  # how _nan_out stores an infinite number
            row[k] = float(row[k])
    return row
