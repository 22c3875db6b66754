"""The runs of a sweep: the cache of their records (``out/runs/<hash>.json``, written
atomically), one run to its record, and many in worker processes or Ray tasks
(:func:`fedlab.sweep` with ``workers > 1``), each worker on one torch thread."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .runspec import execute

__all__ = ["load_record", "run_id", "run_one", "run_parallel", "store"]

Noted = Callable[[BaseException, dict], BaseException]


def run_id(description: Mapping[str, Any]) -> str:
    """The cache key of a run: a hash of its full ``description``."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def store(out: str | Path, description: Mapping[str, Any], metrics: Mapping[str, float],
          wall_s: float = float("nan"), **extra: Any) -> Path:
    """Write one finished run into the cache under ``out`` (atomically) and return its
    path: its full ``description`` (:func:`fedlab.runspec.describe`), its ``metrics``,
    ``wall_s`` and any ``extra`` entries (a summary, per-site numbers, a source)."""
    path = Path(out) / "runs" / f"{run_id(description)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"version": 1, "description": dict(description), "metrics": dict(metrics),
              "wall_s": wall_s, **extra}
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, path)
    return path


def load_record(out: Path | None, description: dict) -> dict | None:
    """The cached record of the run ``description`` under ``out``, or None."""
    if out is None:
        return None
    path = out / "runs" / f"{run_id(description)}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("description") == description else None


def run_one(description: dict) -> dict:
    """Run one full ``description`` and return its record: the description, metrics
    (the numbers of ``History.summary()`` plus ``site_mean`` and ``site_worst`` of the
    per-site test accuracy, or PSNR), wall time, the summary and per-site numbers."""
    t0 = time.perf_counter()
    history = execute(description)
    wall = time.perf_counter() - t0
    summary = history.summary()
    per_site = {}
    for m in ("accuracy", "auc", "loss", "psnr", "ssim", "nmse"):
        try:
            per_site[m] = history.per_site(m).to_dict()
        except KeyError:
            continue
    metrics = {k: v for k, v in summary.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    values = pd.Series(per_site.get("accuracy") or per_site.get("psnr") or {}, dtype=float)
    metrics.update(site_mean=float(values.mean()), site_worst=float(values.min()))
    return {"description": description, "metrics": metrics, "wall_s": wall,
            "summary": summary, "per_site": per_site}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run_one_thread(description: dict) -> dict:
    _one_thread()
    return run_one(description)


def run_parallel(todo: list[dict], workers: int, backend: str,
                 finished: Callable[[dict], None], noted: Noted) -> None:
    """Run every description of ``todo`` on ``workers`` processes (``backend``
    ``"processes"``) or Ray tasks (``"ray"``), calling ``finished(record)`` as each run
    ends. After a failure no new run starts; the ones running finish, then the first
    error is raised, passed through ``noted(error, description)``."""
    if backend == "ray":
        return _ray(todo, workers, finished, noted)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    error = None
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(run_one, desc): desc for desc in todo}
        for future in as_completed(futures):
            if future.cancelled():
                continue
            try:
                finished(future.result())
            except Exception as err:
                if error is None:
                    error = noted(err, futures[future])
                    for other in futures:
                        other.cancel()
    if error is not None:
        raise error


def _ray(todo: list[dict], workers: int, finished: Callable[[dict], None],
         noted: Noted) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'fedlab-workbench[ray]'") \
            from None
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1)(_run_one_thread)
    pending = {task.remote(desc): desc for desc in todo}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        desc = pending.pop(ready[0])
        try:
            finished(ray.get(ready[0]))
        except Exception as err:
            for ref in pending:
                ray.cancel(ref)
            raise noted(err, desc) from None
