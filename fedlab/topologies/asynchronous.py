"""The asynchronous schedule: a star whose server acts on arrivals, on the simulated clock.

Each site works in *jobs*: it downloads the current model version, trains, uploads. A
job's times come from the site's :class:`~fedlab.comm.Link` (the bytes of its two
messages over the link's bandwidth and latency, its samples over the link's training
speed) and from its :class:`~fedlab.comm.Availability` (a job starts only when the site
is online, and its upload waits while the site is off). The server takes arrivals in
the order of their simulated time; with ``strategy.arrivals_per_version`` of them it
makes the next model version (``strategy.async_step``), and the sites whose updates it
used start their next job from that version at once. One run "round" is one version.
When sites have left and fewer jobs are in flight than a version needs, the version is
made from those that arrive.

A site trains when its job starts (it knows the version it received), with the seeds of
the version it will first be able to join (version ``v + 1`` for a job started from
``v``): with equally fast sites and FedBuff's ``k`` equal to the number of sites, the run
is synchronous FedAvg. A job's two messages are logged in the ledger under the version
during which it started; the jobs still in flight when the run ends were sent, and
counted, but never used. The jobs in flight (their updates and times) are part of the
server state, so a checkpoint holds them and a resumed run continues exactly.

Each version's row of ``History.rounds`` lists its ``arrivals`` (site, start, download,
compute and upload seconds, arrival time, staleness, weight), with ``sim_s`` and
``sim_total_s`` the simulated time of the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..comm.network import message_seconds
from ..engine.context import SERVER
from ..history import GLOBAL
from ..strategies.aggregate import is_finite
from ..strategies.base import State, Strategy, Update
from .base import Topology

if TYPE_CHECKING:
    from ..engine.context import RoundContext
    from ..sites import Site

__all__ = ["Asynchronous"]

# the times of a job in flight, as one float64 tensor in the server state
_META = ("start_s", "down_s", "compute_s", "up_s", "arrival_s", "version", "n_examples",
         "train_loss")


@dataclass(frozen=True)
class Asynchronous(Topology):
    """A server that makes a model version whenever enough updates have arrived."""

    name: ClassVar[str] = "async"
    keeps_time: ClassVar[bool] = True

    def check_strategy(self, strategy: Strategy) -> None:
        if not getattr(strategy, "asynchronous", False):
            raise ValueError(f"the asynchronous schedule needs an asynchronous strategy "
                             f"(fedasync, fedbuff), got {strategy.name!r}")

    def start(self, ctx: RoundContext, initial: State) -> None:
        if ctx.links is None:
            raise ValueError(f"{ctx.strategy.name} runs on the simulated clock: pass "
                             "network= (a profile such as 'hospital-vpn', 'mixed', or a "
                             "Link per site; fedlab run --network NAME)")
        need = ctx.strategy.arrivals_per_version
        if need > ctx.n_sites:
            raise ValueError(f"{ctx.strategy.name} waits for {need} arrivals per version, more "
                             f"than the {ctx.n_sites} sites: use k <= {ctx.n_sites}")
        ctx.global_state = initial
        ctx.server_state = {"clock": torch.zeros((), dtype=torch.float64), "jobs": {}}
        ctx.wire.start(initial)

    def round(self, ctx: RoundContext) -> None:
        strategy, jobs = ctx.strategy, ctx.server_state["jobs"]
        clock0 = float(ctx.server_state["clock"])
        if ctx.round == 1:  # every site starts from the initial model at time 0
            self._dispatch(ctx, range(ctx.n_sites), 0.0, version=0)
        arrived: list[tuple[int, Update, dict]] = []
        while len(arrived) < strategy.arrivals_per_version and jobs:
            i = min(jobs, key=lambda s: (float(jobs[s]["meta"][4]), int(s)))
            job = jobs.pop(i)
            meta = dict(zip(_META, job["meta"].tolist(), strict=True))
            ctx.server_state["clock"] = torch.tensor(meta["arrival_s"], dtype=torch.float64)
            update = Update(ctx.names[int(i)], job["payload"], int(meta["n_examples"]),
                            {"train_loss": meta["train_loss"]})
            if ctx.exclude_nonfinite([update]):
                arrived.append((int(i), update, meta))
        clock = float(ctx.server_state["clock"])
        rows = []
        if arrived:
            staleness = [ctx.round - 1 - int(m["version"]) for _, _, m in arrived]
            ctx.global_state, weights = strategy.async_step(
                ctx.global_state, [u for _, u, _ in arrived], staleness)
            if not is_finite(ctx.global_state):
                raise FloatingPointError(f"version {ctx.round}: the global model is non-finite "
                                         f"after the server step of {strategy.label}")
            rows = [{"site": u.site, **{k: round(m[k], 6) for k in _META[:5]},
                     "staleness": t, "weight": round(w, 6)}
                    for (_, u, m), t, w in zip(arrived, staleness, weights, strict=True)]
        else:
            ctx.history.events.append({"round": ctx.round, "site": GLOBAL,
                                       "event": "no update can arrive: every site has left"})
        self._dispatch(ctx, [i for i, _, _ in arrived], clock, version=ctx.round)
        ctx.report.update({"arrivals": rows, "sites": [r["site"] for r in rows],
                           "sim_s": clock - clock0, "sim_total_s": clock,
                           "in_flight": len(jobs)})

    def _dispatch(self, ctx: RoundContext, indices: Sequence[int], now: float,
                  version: int) -> None:
        """Start a job at each site of ``indices`` from the current version: send it
        down, train, and put the upload in flight with its arrival time."""
        starts = {}
        for i in indices:
            name = ctx.names[i]
            avail = ctx.availability.get(name) if ctx.availability else None
            t = avail.next_online(now) if avail is not None else now
            if t is None:
                ctx.history.events.append({"round": ctx.round, "site": name,
                                           "event": "left the federation"})
                continue
            if t > now:
                ctx.history.events.append({"round": ctx.round, "site": name,
                                           "event": f"offline until {t / 3600:.2f} h"})
            starts[i] = t
        if not starts:
            return
        order = sorted(starts)
        message = ctx.strategy.message_down(ctx.global_state, ctx.server_state)
        received = [ctx.send(SERVER, i, message) for i in order]
        down = [ctx.history.ledger[-len(order) + k]["bytes"] for k in range(len(order))]
        round_now, ctx.round = ctx.round, version + 1  # the seeds of the version it joins
        try:
            updates = ctx.train(order, received)
        finally:
            ctx.round = round_now
        for k, (i, u, got) in enumerate(zip(order, updates, received, strict=True)):
            u.payload = ctx.send(i, SERVER, u.payload, reference=got)
            self._in_flight(ctx, i, u, starts[i], down[k], ctx.history.ledger[-1]["bytes"],
                            version)

    def _in_flight(self, ctx: RoundContext, i: int, update: Update, start: float,
                   down_bytes: int, up_bytes: int, version: int) -> None:
        link = ctx.links[ctx.names[i]]
        down_s = message_seconds(down_bytes, link.down_mbps, link.latency_ms)
        samples = ctx.samples(update)
        compute_s = samples / link.samples_per_s
        up_s = message_seconds(up_bytes, link.up_mbps, link.latency_ms)
        ready = start + down_s + compute_s
        avail = ctx.availability.get(ctx.names[i]) if ctx.availability else None
        send_at = avail.next_online(ready) if avail is not None else ready
        if send_at is None:  # it left before it could upload: the update is lost
            ctx.history.events.append({"round": ctx.round, "site": ctx.names[i],
                                       "event": "left the federation before uploading"})
            return
        meta = [start, down_s, compute_s, up_s, send_at + up_s, float(version),
                float(update.n_examples), float(update.metrics.get("train_loss", 0.0))]
        ctx.server_state["jobs"][str(i)] = {
            "payload": update.payload, "meta": torch.tensor(meta, dtype=torch.float64)}

    def eval_states(self, ctx: RoundContext, sites: Sequence[Site]) -> list[State]:
        return [ctx.global_state for _ in sites]

    def final_state(self, ctx: RoundContext) -> State:
        return ctx.global_state
