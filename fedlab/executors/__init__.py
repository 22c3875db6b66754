"""Executors: who runs the sites' local work, and where.

An executor maps :func:`run_site_task` over a list of :class:`SiteTask` values and
returns their :class:`SiteResult` values in the same order. Strategies never see it, so
an executor that runs the tasks in other processes, on other machines or vectorised on
a GPU needs no change to any strategy. Select one with ``fl.run(..., executor=...)``:
an instance, or a name of :data:`EXECUTORS`.

- :class:`Sequential` (the default) runs the tasks one after the other in this process,
  reusing one network.
- :class:`Processes` runs them in a pool of worker processes (``concurrent.futures``);
  the tasks and results travel pickled, so this is also the check that a task holds
  everything it needs.
- :class:`Vmap` trains all the round's sites at once on stacked parameters with
  ``torch.func.vmap`` (:mod:`fedlab.executors.vmap`), on the CPU or a GPU: for hundreds
  or thousands of small sites; the same weights as :class:`Sequential` to float rounding.
- :class:`Ray` (``"ray"``; ``pip install "fedlab-workbench[ray]"``) runs them in Ray
  actors (:mod:`fedlab.executors.ray`), on a local Ray it starts or an existing cluster
  (``address="auto"``, ``"ray://..."``); each actor receives its sites' data once and
  keeps it, later rounds send only the task. Close it (or use ``with``) to stop them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, runtime_checkable

from torch import nn

from .ray import Ray
from .task import SiteResult, SiteTask, run_site_task
from .vmap import NotVectorisable, Vmap

__all__ = ["EXECUTORS", "Executor", "NotVectorisable", "Processes", "Ray", "Sequential",
           "SiteResult", "SiteTask", "Vmap", "get", "run_site_task"]


@runtime_checkable
class Executor(Protocol):
    """Anything with ``map(tasks) -> results`` (same order) can run a round's sites."""

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult]: ...


class Sequential:
    """Runs the tasks one after the other in this process, with one reused network."""

    name = "sequential"

    def __init__(self) -> None:
        self._net: nn.Module | None = None
        self._built_for: tuple | None = None  # (spec, device) of self._net

    def __repr__(self) -> str:
        return "Sequential()"

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult]:
        return [run_site_task(t, self._network(t)) for t in tasks]

    def _network(self, task: SiteTask) -> nn.Module:
        if self._built_for is None or self._built_for != (task.model, task.device):
            self._net = task.model.build().to(task.device)
            self._built_for = (task.model, task.device)
        return self._net


class Processes:
    """Runs the tasks in ``workers`` worker processes (tasks and results pickled)."""

    name = "processes"

    def __init__(self, workers: int = 2) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers

    def __repr__(self) -> str:
        return f"Processes(workers={self.workers})"

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult]:
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(run_site_task, tasks))


#: names accepted by :func:`get` (and ``fl.run(..., executor=NAME)``)
EXECUTORS: dict[str, type] = {"sequential": Sequential, "processes": Processes, "vmap": Vmap,
                              "ray": Ray}


def get(executor: str | Executor | None) -> Executor:
    """An executor from its name (see :data:`EXECUTORS`) or as given; None: Sequential."""
    if executor is None:
        return Sequential()
    if isinstance(executor, str):
        key = executor.lower()
        if key not in EXECUTORS:
            raise ValueError(f"executor must be one of {sorted(EXECUTORS)} or an object with "
                             f"map(tasks), got {executor!r}")
        return EXECUTORS[key]()
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be a name or an object with map(tasks), got "
                        f"{type(executor).__name__}")
    return executor
