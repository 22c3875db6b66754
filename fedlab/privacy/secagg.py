"""Secure aggregation: the server learns the sum of the sites' updates and nothing else.

A simulation of the pairwise-masking protocol of Bonawitz, Ivanov, Kreuter, Marcedone,
McMahan, Patel, Ramage, Segal and Seth, "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", ACM CCS 2017. Per round:

1. *Advertise keys*: each site publishes a Diffie-Hellman public key; the server
   broadcasts the list.
2. *Share keys*: each site splits its DH secret key and a fresh self-mask seed ``b``
   into Shamir shares (Shamir, "How to Share a Secret", CACM 1979), threshold ``t``,
   one per other site, sent (encrypted) through the server.
3. *Masked input*: site ``i`` encodes its (example-weighted) update in fixed point,
   integers modulo ``2**modulus_bits``, and adds ``PRG(b_i)`` plus, for every other
   site ``j``, ``+PRG(s_ij)`` if ``i < j`` and ``-PRG(s_ij)`` otherwise, where
   ``s_ij`` is their agreed DH secret. Summed over all sites the pairwise masks cancel.
4. *Unmasking*: for the sites whose masked input never arrived (dropped out), the
   survivors reveal shares of the dropped sites' DH keys, from which the server
   recomputes and removes the masks they shared with survivors; for the survivors
   they reveal shares of ``b``. With at least ``t`` survivors the server gets the sum.

The cryptography is real (:mod:`fedlab.privacy.crypto`: X25519, HKDF, ChaCha20 masks,
AES-GCM sealed shares). What the simulation still shortcuts, stated plainly: one process
plays every party, so nothing stops this code from reading any site's secret; each
site's secrets derive from ``seed``, its name and the round instead of the operating
system's randomness (a run is reproducible, and anyone who knows ``seed`` knows them);
there are no signatures (the protocol's malicious-server variant) and no consistency
check round. Steps 1, 2 and 4 are logged in the ledger with their real sizes
(``what="keys"`` / ``"shares"``); step 3 is the model upload (integer tensors, larger
than float32 ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..state import Tree
from ..strategies.base import ClientContext, State, Update
from ..strategies.wrapper import Wrapper
from .crypto import KEY_BYTES, SEAL_BYTES, SHARE_BYTES
from .masking import COUNT, Masking

__all__ = ["SecAgg"]


@dataclass(frozen=True)
class SecAgg(Masking, Wrapper):
    """Secure aggregation around a FedAvg-like strategy: the server only sums.

    Parameters
    ----------
    base : Strategy or str
        The wrapped algorithm; its client half trains, its server step gets the
        example-weighted mean that the unmasked sum yields.
    sites : tuple of str
        The roster: names of the sites taking part (e.g. ``tuple(federation.names)``).
    threshold : int or None
        Shares needed to recover a secret (default: a majority of the roster).
    dropped : tuple of str
        Sites whose masked update is lost every round, after they shared their keys.
    drop_rate : float
        Each other site also drops out of a round with this probability (seeded).
    scale_bits, modulus_bits : int
        Fixed point ``2**-scale_bits`` resolution; arithmetic modulo ``2**modulus_bits``.
    seed : int
        Derives the sites' secrets and the drop-outs.
    """

    name: ClassVar[str] = "secagg"
    peer_to_peer: ClassVar[bool] = False  # its server half is not a plain mean
    sites: tuple[str, ...] = ()
    threshold: int | None = None
    dropped: tuple[str, ...] = ()
    drop_rate: float = 0.0
    scale_bits: int = 24
    modulus_bits: int = 56
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base.rule is not None:
            raise ValueError(f"secure aggregation reveals only the sum of the updates; "
                             f"combine={self.base.rule} needs each update")
        object.__setattr__(self, "sites", tuple(self.sites))
        object.__setattr__(self, "dropped", tuple(self.dropped))
        if len(self.sites) < 2:
            raise ValueError("sites must name at least two sites (the roster), "
                             "e.g. SecAgg(FedAvg(), sites=federation.names)")
        if len(self.sites) > 100:
            raise ValueError(f"sites: at most 100 sites (int64 arithmetic), got {len(self.sites)}")
        if unknown := set(self.dropped) - set(self.sites):
            raise ValueError(f"dropped must be names from sites {self.sites}, got {unknown}")
        if not 1 <= self.t <= len(self.sites):
            raise ValueError(f"threshold must be in [1, {len(self.sites)}], got {self.threshold}")
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if not 0 < self.scale_bits < self.modulus_bits <= 62:
            raise ValueError("need 0 < scale_bits < modulus_bits <= 62, got "
                             f"scale_bits={self.scale_bits}, modulus_bits={self.modulus_bits}")

    def bind(self, model: nn.Module, examples: dict[str, int]) -> SecAgg:
        missing, unknown = set(examples) - set(self.sites), set(self.sites) - set(examples)
        if missing or unknown:
            raise ValueError(f"sites (the roster) must be the federation's sites {list(examples)}"
                             f": missing {sorted(missing)}, unknown {sorted(unknown)}")
        return super().bind(model, examples)

    @property
    def t(self) -> int:
        return self.threshold if self.threshold is not None else len(self.sites) // 2 + 1

    # -- client half --------------------------------------------------------------
    def client_update(self, ctx: ClientContext) -> Update:
        update = self.base.client_update(ctx)
        masked = self.mask(ctx.site, ctx.round, update.payload, update.n_examples)
        return Update(update.site, masked, update.n_examples, dict(update.metrics))

    # -- server half --------------------------------------------------------------
    def init_server_state(self, global_state: State) -> Tree:
        return {"base": self.base.init_server_state(global_state),
                "secagg": {"round": torch.zeros((), dtype=torch.int64)}}

    def message_down(self, global_state: State, server_state: Tree) -> State:
        return self.base.message_down(global_state, server_state["base"])

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        rnd = int(server_state["secagg"]["round"]) + 1
        total = self.unmask(rnd, updates)
        n = float(total.pop(COUNT))
        mean = {k: (total[k] / n).to(v.dtype) if v.is_floating_point()
                else (total[k] / n).round().to(v.dtype) for k, v in global_state.items()}
        new_global, inner_state = self.base.aggregate(
            global_state, [Update("secagg-sum", mean, round(n))], server_state["base"])
        return new_global, {"base": inner_state, "secagg": {"round": torch.tensor(rnd)}}

    def extra_messages(self, rnd: int, updates: list[Update]) -> list[dict]:
        n, gone = len(self.sites), self.drops(rnd)
        rows = []
        for s in self.sites:
            box = (n - 1) * (2 * SHARE_BYTES + SEAL_BYTES)  # a sealed pair per other site
            rows += [{"site": s, "direction": "up", "bytes": 2 * KEY_BYTES, "what": "keys"},
                     {"site": s, "direction": "down", "bytes": 2 * n * KEY_BYTES,
                      "what": "keys"},
                     {"site": s, "direction": "up", "bytes": box, "what": "shares"},
                     {"site": s, "direction": "down", "bytes": box, "what": "shares"}]
            if s not in gone:
                rows.append({"site": s, "direction": "up", "bytes": (n - 1) * SHARE_BYTES,
                             "what": "shares"})
        return rows + self.base.extra_messages(rnd, updates)

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        return {**self.base.round_report(rnd, server_state["base"]),
                "dropped": float(len(self.drops(rnd)))}

