"""Executing the tutorial notebooks headlessly (papermill), as CI and ``make tutorials`` do."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["notebooks_dir", "find_notebooks", "run_notebooks"]


def notebooks_dir() -> Path:
    """The ``notebooks/`` folder of the source checkout this package sits in."""
    path = Path(__file__).resolve().parents[1] / "notebooks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"no notebooks folder at {path}: the tutorials ship with the source repository, "
            "not with the installed package")
    return path


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """Numbered notebooks, all of them or those whose name starts with one of ``names``."""
    found = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return found
    chosen = [p for p in found if any(p.name.startswith(n) or p.stem == n for n in names)]
    if not chosen:
        raise ValueError(f"names {names} match no notebook; have {[p.name for p in found]}")
    return chosen


def _strip_run_metadata(path: Path, seconds: float | None = None) -> None:
    """Drop papermill's paths and timestamps so that re-running changes only outputs;
    with ``seconds`` (a run at the teaching defaults), record the run time as
    ``metadata.fedlab.run_seconds`` (the site shows it on the lesson's page)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    if seconds is not None:
        nb.metadata["fedlab"] = {"run_seconds": round(seconds, 1)}
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def run_notebooks(names: list[str] | None = None, smoke: bool = False, inplace: bool = False,
                  out: str | Path | None = None, check: bool = False, seed: int | None = None,
                  threads: int | None = None) -> int:
    """Execute notebooks with papermill; returns 0 when all succeed, 1 otherwise.

    ``check`` runs the teaching defaults with the lessons' claim cells asserting (see
    :mod:`fedlab.claims`), prints every claim with its margin, and fails when a claim does
    not hold or a lesson checks none. ``seed`` is injected as ``SEED`` into each lesson's
    parameters cell; ``threads`` sets ``OMP_NUM_THREADS`` for the kernels (another thread
    count rounds differently, as another CPU does).
    """
    import papermill as pm

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    params: dict = {"SMOKE": True} if smoke else {}
    if seed is not None:
        params["SEED"] = int(seed)
    outdir = Path(out or "executed")
    log = outdir / "claims.jsonl"
    saved = {k: os.environ.get(k) for k in ("FEDLAB_CLAIMS_LOG", "FEDLAB_LESSON",
                                            "OMP_NUM_THREADS", "FEDLAB_SMOKE")}
    if check:
        outdir.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        os.environ["FEDLAB_CLAIMS_LOG"] = str(log.resolve())
        os.environ.pop("FEDLAB_SMOKE", None)  # the claims need the teaching defaults
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    failed, lessons = [], []
    try:
        for nb in find_notebooks(names):
            target = nb if inplace else outdir / nb.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.environ["FEDLAB_LESSON"] = nb.stem
            lessons.append(nb.stem)
            t0 = time.perf_counter()
            try:
                # Teaching runs inject nothing unless asked: the committed parameters cell
                # stays the only one, so FEDLAB_SMOKE=1 (nbval) still switches it to smoke.
                pm.execute_notebook(str(nb), str(target), parameters=params,
                                    cwd=str(nb.parent), progress_bar=False)
                _strip_run_metadata(target, None if smoke or seed is not None
                                    else time.perf_counter() - t0)
            except Exception as err:  # report every notebook, then fail
                failed.append(nb.name)
                print(f"FAILED {nb.name}: {err}")
                continue
            print(f"ok     {nb.name} ({time.perf_counter() - t0:.1f} s) -> {target}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if check:
        failed += _report_claims(log, lessons)
    return 1 if failed else 0


def _report_claims(log: Path, lessons: list[str]) -> list[str]:
    """Print every checked claim with its margin; the lessons that checked none."""
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    print(f"\n{len(rows)} claims checked (margin: how far the value cleared its bound):")
    for r in rows:
        print(f"  {r['lesson'][:2]}  margin {r['margin']:+.4g}  ({r['value']:.4g} {r['op']} "
              f"{r['bound']:.4g})  {r['text']}")
    silent = [name for name in lessons if not any(r["lesson"] == name for r in rows)]
    for name in silent:
        print(f"FAILED {name}: no claim was checked (a lesson states results: check them)")
    return silent
