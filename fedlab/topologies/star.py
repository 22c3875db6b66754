"""The star: a central server, the default topology of :func:`fedlab.run`.

Each round the server sends its message (the global model, or what the strategy's
``message_down`` says) to the participating sites — every site, or a seeded sample
(``clients_per_round``) — each site runs the strategy's client half and sends its update
back, and the server combines the finite updates with the strategy's server half.
Every message goes through the run's codecs and is logged with ``peer="server"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..engine.context import SERVER
from ..strategies.aggregate import is_finite
from ..strategies.base import State
from .base import Topology

if TYPE_CHECKING:
    from ..engine.context import RoundContext
    from ..sites import Site

__all__ = ["Star"]


@dataclass(frozen=True)
class Star(Topology):
    """A central server that sends the model to the sites and aggregates their updates."""

    name: ClassVar[str] = "star"

    def start(self, ctx: RoundContext, initial: State) -> None:
        ctx.global_state = ctx.strategy.init_global_state(initial)
        ctx.server_state = ctx.strategy.init_server_state(ctx.global_state)
        # the downlink reference both ends can build from the seed (for a delta codec)
        ctx.wire.start(ctx.strategy.message_down(ctx.global_state, ctx.server_state))

    def round(self, ctx: RoundContext) -> None:
        strategy, talks = ctx.strategy, ctx.strategy.communicates
        message = strategy.message_down(ctx.global_state, ctx.server_state)
        chosen = ctx.participants()
        received = [ctx.send(SERVER, i, message) if talks else message for i in chosen]
        replies = ctx.train(chosen, received)  # None for a site that dropped out
        if talks:  # what arrives is the decoded message: lossy codecs change the average
            for i, u, got in zip(chosen, replies, received, strict=True):
                if u is not None:
                    u.payload = ctx.send(i, SERVER, u.payload, reference=got)
        updates = [u for u in replies if u is not None]
        if not updates:
            raise RuntimeError(f"round {ctx.round}: no site replied (every participant "
                               "dropped out)")
        good, combined = ctx.exclude_nonfinite(updates), {}
        if good:
            ctx.global_state, ctx.server_state, combined = strategy.server_step(
                ctx.global_state, good, ctx.server_state)
            if not is_finite(ctx.global_state):
                raise FloatingPointError(
                    f"round {ctx.round}: the global model is non-finite after the server step "
                    f"of {strategy.label} (a server learning rate, noise or attack too large?)")
        for msg in strategy.extra_messages(ctx.round, updates):
            ctx.log(msg)
        ctx.report.update({"sites": [u.site for u in updates],
                           "local_samples": dict(ctx.trained)})
        ctx.report.update(strategy.round_report(ctx.round, ctx.server_state))
        ctx.report.update(combined)

    def eval_states(self, ctx: RoundContext, sites: Sequence[Site]) -> list[State]:
        own = dict(zip(ctx.names, ctx.site_states, strict=True))
        return [ctx.strategy.eval_state(ctx.global_state, own.get(s.name, {})) for s in sites]

    def final_state(self, ctx: RoundContext) -> State:
        return ctx.strategy.final_model(ctx.global_state, ctx.server_state)
