"""Cyclic weight transfer: one model travels from hospital to hospital.

Chang et al., "Distributed deep learning networks among institutions for medical
imaging", Journal of the American Medical Informatics Association 25(8), 2018. The
model trains at one site, is handed to the next, trains there, and so on around the
cycle; nothing is ever averaged. Sites see the model in a fixed order, or in a new
random order each cycle (``order="shuffled"``), which Chang et al. found helps when
sites differ. One round of :func:`fedlab.run` is ``cycles`` passes over all sites.

Messages: one transfer per hop, i.e. whenever the model changes hands (``n`` per cycle,
one fewer in the very first cycle, which starts from the common initial model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..training import derive_seed
from .base import Decentralised

__all__ = ["Cyclic", "ORDERS"]

ORDERS = ("fixed", "shuffled")


@dataclass(frozen=True)
class Cyclic(Decentralised):
    """Cyclic weight transfer.

    Parameters
    ----------
    order : str
        ``"fixed"`` (site order of the federation) or ``"shuffled"`` (a new seeded
        random order every cycle).
    cycles : int
        Passes over all sites per round (the run's ``rounds`` times this is the total
        number of cycles).
    """

    name: ClassVar[str] = "cyclic"
    order: str = "fixed"
    cycles: int = 1

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not isinstance(self.cycles, int) or self.cycles < 1:
            raise ValueError(f"cycles must be an integer >= 1, got {self.cycles!r}")

    def visit_order(self, n_sites: int, seed: int, rnd: int, cycle: int) -> list[int]:
        """The sites in the order the model visits them in one cycle."""
        if self.order == "fixed":
            return list(range(n_sites))
        rng = np.random.default_rng(derive_seed(seed, rnd, cycle, 17))
        return [int(i) for i in rng.permutation(n_sites)]

    def round(self, ctx) -> None:
        holder = ctx.memory.get("holder")
        model = ctx.shared[0] if holder is None else ctx.shared[holder]
        chosen = set(ctx.participants())  # sampled sites only (clients_per_round)
        for cycle in range(self.cycles):
            for site in self.visit_order(ctx.n_sites, ctx.seed, ctx.round, cycle):
                if site not in chosen:
                    continue
                if holder is not None and holder != site:
                    model = ctx.send(holder, site, model)
                update = ctx.train([site], [model], cycle)[0]
                if ctx.exclude_nonfinite([update]):  # else the model goes on unchanged
                    model = update.payload
                holder = site
        ctx.memory["holder"] = holder
        ctx.report["holder"] = ctx.names[holder]
        ctx.shared = [model] * ctx.n_sites
        self.record_consensus(ctx)
