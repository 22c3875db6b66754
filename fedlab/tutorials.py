"""Executing the tutorial notebooks headlessly (papermill), as CI and ``make tutorials`` do."""

from __future__ import annotations

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


def _strip_run_metadata(path: Path) -> None:
    """Drop papermill's paths and timestamps so that re-running changes only outputs."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def run_notebooks(names: list[str] | None = None, smoke: bool = False, inplace: bool = False,
                  out: str | Path | None = None) -> int:
    """Execute notebooks with papermill; returns 0 when all succeed, 1 otherwise."""
    import papermill as pm

    failed = []
    for nb in find_notebooks(names):
        target = nb if inplace else Path(out or "executed") / nb.name
        target.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            # Teaching runs inject nothing: the committed parameters cell stays the only
            # one, so FEDLAB_SMOKE=1 (nbval) still switches the committed notebook to smoke.
            pm.execute_notebook(str(nb), str(target), parameters={"SMOKE": True} if smoke else {},
                                cwd=str(nb.parent), progress_bar=False)
            _strip_run_metadata(target)
        except Exception as err:  # report every notebook, then fail
            failed.append(nb.name)
            print(f"FAILED {nb.name}: {err}")
            continue
        print(f"ok     {nb.name} ({time.perf_counter() - t0:.1f} s) -> {target}")
    return 1 if failed else 0
