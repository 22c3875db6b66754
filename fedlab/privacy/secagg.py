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

Simulation shortcuts, stated plainly: DH runs modulo the Mersenne prime ``2**61 - 1``
and the PRG is PyTorch's generator (both far too weak for real use); each site's
secrets derive from ``seed``, its name and the round (a run is reproducible); shares are
not encrypted. Steps 1, 2 and 4 are logged in the ledger (``what="keys"`` /
``"shares"``); step 3 is the model upload (integer tensors, larger than float32 ones).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..state import Tree
from ..strategies.base import ClientContext, State, Update
from ..strategies.wrapper import Wrapper
from ..training import derive_seed
from .crypto import (
    PRIME,
    agree,
    decode,
    encode,
    prg_mask,
    public_key,
    shamir_reconstruct,
    shamir_share,
)

__all__ = ["SecAgg", "KEY_BYTES", "SHARE_BYTES"]

KEY_BYTES = 32     # an X25519 public key, as a real deployment would send
SHARE_BYTES = 16   # one share (x, y), two 8-byte field elements
_N = "secagg/n"    # the masked example count travels with the masked update


@dataclass(frozen=True)
class SecAgg(Wrapper):
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

    # -- what each site knows (its secrets) and publishes -------------------------
    def _secret(self, site: str, rnd: int, what: int) -> int:
        return derive_seed(self.seed, rnd, zlib.crc32(site.encode()), what) % (PRIME - 2) + 1

    def public_keys(self, rnd: int) -> dict[str, int]:
        """The public keys the server broadcasts in round ``rnd`` (step 1)."""
        return {s: public_key(self._secret(s, rnd, 0)) for s in self.sites}

    def _shares(self, site: str, rnd: int) -> tuple[list, list]:
        """Step 2: ``site``'s shares of its DH key and of ``b``, share ``i`` for site ``i``."""
        rng = random.Random(self._secret(site, rnd, 2))
        n = len(self.sites)
        return (shamir_share(self._secret(site, rnd, 0), n, self.t, rng),
                shamir_share(self._secret(site, rnd, 1), n, self.t, rng))

    def drops(self, rnd: int) -> set[str]:
        """Sites whose masked update is lost in round ``rnd``."""
        rng = random.Random(derive_seed(self.seed, rnd, 7))
        return set(self.dropped) | {s for s in self.sites if rng.random() < self.drop_rate}

    def _pair_masks(self, i: int, sk: int, pks: dict[str, int], like: State,
                    others: Sequence[str]) -> State:
        total = {k: torch.zeros(v.shape, dtype=torch.int64) for k, v in like.items()}
        for other in others:
            j = self.sites.index(other)
            sign = 1 if i < j else -1
            for k, v in prg_mask(agree(sk, pks[other]), like, self.modulus_bits).items():
                total[k] += sign * v
        return total

    def mask(self, site: str, rnd: int, payload: State, n_examples: int) -> State:
        """Step 3 at ``site``: its payload weighted by ``n_examples``, in fixed point,
        plus its self mask and its pairwise masks: what the server receives."""
        if site not in self.sites:
            raise ValueError(f"site {site!r} is not in the roster sites={self.sites}")
        plain = {k: v.double() * n_examples for k, v in payload.items()}
        plain[_N] = torch.tensor(float(n_examples), dtype=torch.float64)
        enc = {k: encode(v, self.scale_bits, self.modulus_bits) for k, v in plain.items()}
        self_mask = prg_mask(self._secret(site, rnd, 1), enc, self.modulus_bits)
        pair = self._pair_masks(self.sites.index(site), self._secret(site, rnd, 0),
                                self.public_keys(rnd), enc, [s for s in self.sites if s != site])
        return {k: torch.remainder(enc[k] + self_mask[k] + pair[k], 2**self.modulus_bits)
                for k in enc}

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

    def unmask(self, rnd: int, updates: list[Update]) -> State:
        """Step 4: the sum of the surviving sites' encoded updates, as floats."""
        gone = self.drops(rnd)
        alive = [u for u in updates if u.site not in gone]
        if len(alive) < self.t:
            raise RuntimeError(f"round {rnd}: {len(alive)} sites survived, fewer than the "
                               f"threshold {self.t}; secure aggregation cannot unmask")
        m, like = 2**self.modulus_bits, alive[0].payload
        total = {k: sum(u.payload[k] for u in alive) % m for k in like}
        holders = [self.sites.index(u.site) for u in alive][:self.t]
        pks, names = self.public_keys(rnd), [u.site for u in alive]
        for u in alive:  # survivors' self masks, from the survivors' shares of b
            b = shamir_reconstruct([self._shares(u.site, rnd)[1][h] for h in holders])
            for k, v in prg_mask(b, like, self.modulus_bits).items():
                total[k] = (total[k] - v) % m
        for d in sorted(set(self.sites) - set(names)):  # dropped: recover their DH key
            sk = shamir_reconstruct([self._shares(d, rnd)[0][h] for h in holders])
            masks = self._pair_masks(self.sites.index(d), sk, pks, like, names)
            for k, v in masks.items():  # the survivors' masks with d are minus d's masks
                total[k] = (total[k] + v) % m
        return {k: decode(v, self.scale_bits, self.modulus_bits) for k, v in total.items()}

    def sum_error(self, rnd: int, payloads: Mapping[str, State],
                  n_examples: Mapping[str, int]) -> float:
        """Mask every site's payload for round ``rnd``, unmask what survives and return
        the largest absolute difference from the plain example-weighted sum of the
        survivors' payloads: about ``2**-scale_bits`` times the number of sites."""
        updates = [Update(s, self.mask(s, rnd, payloads[s], n_examples[s]), n_examples[s])
                   for s in self.sites]
        total = self.unmask(rnd, updates)
        alive = [s for s in self.sites if s not in self.drops(rnd)]
        total[_N] = total[_N] - sum(float(n_examples[s]) for s in alive)
        for k in payloads[self.sites[0]]:
            total[k] = total[k] - sum(n_examples[s] * payloads[s][k].double() for s in alive)
        return max(float(v.abs().max()) for v in total.values())

    def aggregate(self, global_state: State, updates: list[Update],
                  server_state: State) -> tuple[State, State]:
        rnd = int(server_state["secagg"]["round"]) + 1
        total = self.unmask(rnd, updates)
        n = float(total.pop(_N))
        mean = {k: (total[k] / n).to(v.dtype) if v.is_floating_point()
                else (total[k] / n).round().to(v.dtype) for k, v in global_state.items()}
        new_global, inner_state = self.base.aggregate(
            global_state, [Update("secagg-sum", mean, round(n))], server_state["base"])
        return new_global, {"base": inner_state, "secagg": {"round": torch.tensor(rnd)}}

    def extra_messages(self, rnd: int, updates: list[Update]) -> list[dict]:
        n, gone = len(self.sites), self.drops(rnd)
        rows = []
        for s in self.sites:
            rows += [{"site": s, "direction": "up", "bytes": KEY_BYTES, "what": "keys"},
                     {"site": s, "direction": "down", "bytes": n * KEY_BYTES, "what": "keys"},
                     {"site": s, "direction": "up", "bytes": 2 * (n - 1) * SHARE_BYTES,
                      "what": "shares"},
                     {"site": s, "direction": "down", "bytes": 2 * (n - 1) * SHARE_BYTES,
                      "what": "shares"}]
            if s not in gone:
                rows.append({"site": s, "direction": "up", "bytes": (n - 1) * SHARE_BYTES,
                             "what": "shares"})
        return rows + self.base.extra_messages(rnd, updates)

    def round_report(self, rnd: int, server_state: State) -> dict[str, float]:
        return {**self.base.round_report(rnd, server_state["base"]),
                "dropped": float(len(self.drops(rnd)))}

