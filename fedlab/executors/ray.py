"""``Ray``: the sites live in Ray actors, on this machine or an existing cluster.

A site's data travels to its actor once, when a round first needs it, and stays there
(as at a hospital); later tasks carry a :class:`SiteRef` (a key, no images) instead. The
actor runs the same :func:`run_site_task`, so the History is :class:`Sequential`'s for
the same seed; only the :class:`SiteResult` comes back. Placement is keyed by the Site
object (weakly), never its name: other sites of the same names are placed anew, the same
ones not sent again, the data of sites gone is dropped. ``ray`` is imported on first use.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..sites import Site
from .task import SiteResult, SiteTask

__all__ = ["Ray", "SiteHolder", "SiteRef"]

#: whether fedlab started the Ray in this process, and how many Ray executors use it
_OWNED = {"started": False, "users": 0}


def _check(name: str, value: Any, low: int = 1, kind: type | tuple = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value < low:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name} must be {what} >= {low}, got {value!r}")


@dataclass(frozen=True)
class SiteRef:
    """In a task, a site placed on an actor: its ``key`` there and its ``name``."""

    key: int
    name: str


class SiteHolder:
    """Inside one Ray actor: keeps the sites placed on it, runs their tasks one after
    the other with one reused network, on ``threads`` torch threads."""

    def __init__(self, threads: int) -> None:
        from . import Sequential  # the package, imported by now (it imports this module)

        torch.set_num_threads(threads)
        self.sites: dict[int, Site] = {}
        self.runner = Sequential()

    def place(self, sites: dict[int, Site]) -> None:
        """Keep ``sites`` (key -> Site), copied: the arrays Ray hands over are read-only."""
        self.sites.update({k: copy.deepcopy(s) for k, s in sites.items()})

    def forget(self, keys: Sequence[int]) -> None:
        """Drop the data of the sites ``keys``."""
        self.sites = {k: s for k, s in self.sites.items() if k not in set(keys)}

    def run(self, tasks: Sequence[SiteTask]) -> list[SiteResult]:
        """Run each task (its site a :class:`SiteRef`) at the site held under its key."""
        return self.runner.map([replace(t, site=self.sites[t.site.key]) for t in tasks])


class Ray:
    """Runs each round's site tasks in Ray actors that keep the sites' data.

    Parameters
    ----------
    address : str, optional
        None (default): the Ray of this process if initialised, else a local one started
        for the run; ``"auto"`` or ``"ray://host:10001"``: an existing cluster.
    num_cpus : int, optional
        CPUs of the local Ray started when ``address`` is None (default: all).
    sites_per_actor : int, optional
        Up to this many sites on each actor, filling one before starting the next
        (5 sites, 3 per actor: 2 actors). Exclusive with ``max_actors``.
    max_actors : int, optional
        At most this many actors: one per site up to it, then round-robin (the actor
        holding fewest). Default: as many as the cluster has CPUs for (``CPU //
        cpus_per_actor``), so 100 sites on a 2-core laptop make 2 actors, not 100.
    cpus_per_actor : int
        Torch threads of each actor (default 1: small models train fastest on one thread,
        the actors run in parallel); at most ``CPU // cpus_per_actor`` actors start. The
        actors hold no Ray CPUs (Ray's default), so executors never wait for each other.
    gpus_per_actor : float
        GPUs each actor reserves (default 0; 0.25: 4 actors per GPU), for CUDA runs.
    **init_kwargs
        More keywords for ``ray.init`` (``runtime_env=``, ``namespace=``, ...).

    For benchmarks: ``startup_s`` (seconds to start or join Ray, start the actors and
    place the data), ``init_s`` (its ``ray.init`` part), ``placements`` (sites sent),
    ``actors`` (the actor handles, one per started actor).

    ``with Ray() as ex:`` or :meth:`close` stops the actors, and the Ray if fedlab started
    it and no other Ray executor uses it. Given by name (``executor="ray"``), each run
    gets a new executor whose actors stop with it; the local Ray stays up for the next
    run and stops when the process ends.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 sites_per_actor: int | None = None, *, max_actors: int | None = None,
                 cpus_per_actor: int = 1, gpus_per_actor: float = 0.0,
                 **init_kwargs: Any) -> None:
        if not isinstance(address, str | None):
            raise ValueError(f"address must be None, 'auto' or 'ray://host:port', got {address!r}")
        if address is not None and num_cpus is not None:
            raise ValueError(f"num_cpus is for a local Ray (address=None); the cluster at "
                             f"address={address!r} has its own CPUs, got num_cpus={num_cpus}")
        for name, value in [("num_cpus", num_cpus), ("sites_per_actor", sites_per_actor),
                            ("max_actors", max_actors), ("cpus_per_actor", cpus_per_actor)]:
            if value is not None:
                _check(name, value)
        _check("gpus_per_actor", gpus_per_actor, 0, (int, float))
        if sites_per_actor is not None and max_actors is not None:
            raise ValueError("give at most one of sites_per_actor and max_actors, got "
                             f"sites_per_actor={sites_per_actor}, max_actors={max_actors}")
        self.address, self.num_cpus = address, num_cpus
        self.sites_per_actor, self.max_actors = sites_per_actor, max_actors
        self.cpus_per_actor, self.gpus_per_actor = cpus_per_actor, gpus_per_actor
        self.init_kwargs, self.startup_s, self.init_s, self.placements = init_kwargs, 0., 0., 0
        self._ray: Any = None
        self._reset()

    def __repr__(self) -> str:
        keys = ("address", "num_cpus", "sites_per_actor", "max_actors")
        return "Ray(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in keys
                                  if getattr(self, k) is not None) + ")"

    def __enter__(self) -> Ray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult]:
        """Run ``tasks`` on the actors holding their sites; results in the same order."""
        if not tasks:
            return []
        self._start()
        cuda = [t.device for t in tasks if torch.device(t.device).type == "cuda"]
        if cuda and not self.gpus_per_actor:
            raise ValueError(f"the run trains on {cuda[0]!r} but gpus_per_actor=0 gives the "
                             "actors no GPU: pass Ray(gpus_per_actor=1) (0.25 to share one) "
                             "or fl.run(..., device='cpu')")
        self._forget_gone()
        t0, new = time.perf_counter(), {}
        where = [self._place(t.site, new) for t in tasks]
        if new:  # the data of sites seen for the first time: once, before their tasks
            self._ray.get([self.actors[j].place.remote(s) for j, s in new.items()])
            self.startup_s += time.perf_counter() - t0
        batches = {j: [i for i, w in enumerate(where) if w == j] for j in dict.fromkeys(where)}
        refs = [self.actors[j].run.remote([self.light(tasks[i]) for i in idx])
                for j, idx in batches.items()]
        done = {i: r for idx, out in zip(batches.values(), self._ray.get(refs), strict=True)
                for i, r in zip(idx, out, strict=True)}
        return [done[i] for i in range(len(tasks))]

    def close(self) -> None:
        """Stop the actors (their data goes with them); shut Ray down if fedlab started
        it and no other Ray executor uses it. The executor can be used again after."""
        if self._ray is None:
            return
        for actor in self.actors:
            self._ray.kill(actor)
        self._reset()
        self._finalizer.detach()
        _leave()
        if _OWNED["started"] and _OWNED["users"] == 0 and self._ray.is_initialized():
            self._ray.shutdown()
            _OWNED["started"] = False
        self._ray = None

    def _reset(self) -> None:
        self.actors: list[Any] = []
        self._keys: weakref.WeakKeyDictionary[Site, int] = weakref.WeakKeyDictionary()
        self._where: dict[int, int] = {}  # key -> actor index

    def _start(self) -> None:
        if self._ray is not None:
            return
        t0 = time.perf_counter()
        try:
            import ray
        except ImportError as e:
            raise ImportError('Ray() needs ray: pip install "fedlab-workbench[ray]"') from e
        if not ray.is_initialized():
            kwargs = {"logging_level": logging.WARNING, **self.init_kwargs}
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
            _OWNED.update(started=True, users=0)
        elif self.address is not None or self.num_cpus is not None or self.init_kwargs:
            warnings.warn("Ray is already initialised in this process: Ray(address=..., "
                          "num_cpus=..., **init_kwargs) are not applied", stacklevel=3)
        _OWNED["users"] += 1
        self._finalizer = weakref.finalize(self, _leave)
        self.init_s = time.perf_counter() - t0
        self.startup_s += self.init_s
        self._ray, res = ray, ray.cluster_resources()  # the most actors it has CPUs for:
        gpus = res.get("GPU", 0) // self.gpus_per_actor if self.gpus_per_actor else 1 << 30
        self._cap = int(min(res.get("CPU", 1) // self.cpus_per_actor, gpus))
        self._holder = ray.remote(num_cpus=0, num_gpus=self.gpus_per_actor,
                                  scheduling_strategy="SPREAD")(SiteHolder)  # over the nodes

    def _place(self, site: Site, new: dict[int, dict[int, bytes]]) -> int:
        """The actor index of ``site``, placing it (into ``new``) when first seen."""
        key = self._keys.get(site)
        if key is not None:
            return self._where[key]
        load = Counter(self._where.values())
        room = [j for j in range(len(self.actors)) if load[j] < (self.sites_per_actor or 1e9)]
        grow = len(self.actors) < (self.max_actors or self._cap) if self.sites_per_actor \
            is None else not room
        if grow:
            if len(self.actors) >= self._cap:
                raise ValueError(f"{self!r} needs actor {len(self.actors) + 1} but the Ray "
                                 f"cluster has CPUs for {self._cap}: raise sites_per_actor, "
                                 "lower max_actors or cpus_per_actor, or give Ray more CPUs")
            self.actors.append(self._holder.remote(self.cpus_per_actor))
            room = [len(self.actors) - 1]
        j = min(room, key=lambda a: (load[a], a))
        key, self.placements = self.placements, self.placements + 1  # unique: never reset
        self._keys[site], self._where[key] = key, j
        new.setdefault(j, {})[key] = site.replace()  # without its caches
        return j

    def light(self, task: SiteTask) -> SiteTask:
        """``task`` as it travels to its actor: its (placed) site replaced by a SiteRef."""
        return replace(task, site=SiteRef(self._keys[task.site], task.site.name))

    def _forget_gone(self) -> None:
        """Drop from the actors the data of sites that no longer exist in this process."""
        live = set(self._keys.values())
        for key in [k for k in self._where if k not in live]:
            self.actors[self._where.pop(key)].forget.remote([key])


def _leave() -> None:
    _OWNED["users"] = max(_OWNED["users"] - 1, 0)
