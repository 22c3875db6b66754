"""The secure-aggregation protocol as each party runs it (Bonawitz et al., CCS 2017).

:class:`Masking` holds the parties' side of :class:`~fedlab.privacy.SecAgg`: each site's
secrets and public keys (step 1), its Shamir shares sealed for the other sites (step 2),
its masked upload (step 3) and the server's unmasking with the survivors' shares
(step 4). The cryptography is :mod:`fedlab.privacy.crypto`'s; what the simulation
shortcuts is said in :mod:`fedlab.privacy.secagg`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..strategies.base import State, Update
from ..training import derive_seed
from .crypto import (
    SHARE_BYTES,
    agree,
    decode,
    derive,
    encode,
    keypair,
    open_sealed,
    prg_mask,
    seal,
    shamir_reconstruct,
    shamir_share,
    share_from_bytes,
    share_to_bytes,
)

__all__ = ["Masking", "COUNT"]

COUNT = "secagg/n"  # the masked example count travels with the masked update


class Masking:
    """The protocol's steps; a subclass (:class:`~fedlab.privacy.SecAgg`) provides
    ``sites``, ``t``, ``seed``, ``dropped``, ``drop_rate``, ``scale_bits`` and
    ``modulus_bits``."""

    # -- what each site knows (its secrets) and publishes -------------------------
    def _seed(self, site: str, rnd: int, what: str) -> bytes:
        return derive(f"{self.seed}|{site}|{rnd}".encode(), what)  # a real site: os.urandom

    def _key(self, site: str, rnd: int, kind: str):
        """``site``'s X25519 pair ``"c"`` (encrypts shares) or ``"s"`` (seeds masks)."""
        return keypair(self._seed(site, rnd, f"key {kind}"))

    def public_keys(self, rnd: int) -> dict[str, tuple[bytes, bytes]]:
        """The public keys ``(c, s)`` the server broadcasts in round ``rnd`` (step 1)."""
        return {s: (self._key(s, rnd, "c")[1], self._key(s, rnd, "s")[1]) for s in self.sites}

    def _shares(self, site: str, rnd: int) -> tuple[list, list]:
        """Step 2: ``site``'s shares of its key ``s`` and of ``b``, share ``i`` for site ``i``."""
        rng = random.Random(self._seed(site, rnd, "share coefficients"))
        n, sk = len(self.sites), self._key(site, rnd, "s")[0].private_bytes_raw()
        return (shamir_share(int.from_bytes(sk, "big"), n, self.t, rng),
                shamir_share(int.from_bytes(self._seed(site, rnd, "b"), "big"), n, self.t, rng))

    def _box(self, owner: str, holder: str, rnd: int, me: str) -> tuple[bytes, bytes]:
        peer = holder if me == owner else owner
        key = agree(self._key(me, rnd, "c")[0], self._key(peer, rnd, "c")[1], "shares")
        return key, f"{owner}>{holder}|round {rnd}".encode()

    def sealed_shares(self, site: str, rnd: int) -> dict[str, bytes]:
        """Step 2 on the wire: ``site``'s two shares for each other site, sealed with
        AES-GCM under their agreed key, as the server relays them."""
        sk_shares, b_shares = self._shares(site, rnd)
        out = {}
        for j, other in enumerate(self.sites):
            if other != site:
                key, aad = self._box(site, other, rnd, site)
                nonce = derive(aad, "nonce", 12)  # one message per key: never reused
                out[other] = seal(key, share_to_bytes(sk_shares[j])
                                  + share_to_bytes(b_shares[j]), aad, nonce)
        return out

    def _held(self, owner: str, holder: str, rnd: int, sealed) -> tuple:
        """The shares of ``owner``'s secrets that ``holder`` holds: its own, or opened."""
        if owner == holder:
            j = self.sites.index(owner)
            return tuple(shares[j] for shares in self._shares(owner, rnd))
        key, aad = self._box(owner, holder, rnd, holder)
        plain = open_sealed(key, sealed[owner][holder], aad)
        return share_from_bytes(plain[:SHARE_BYTES]), share_from_bytes(plain[SHARE_BYTES:])

    def drops(self, rnd: int) -> set[str]:
        """Sites whose masked update is lost in round ``rnd``."""
        rng = random.Random(derive_seed(self.seed, rnd, 7))
        return set(self.dropped) | {s for s in self.sites if rng.random() < self.drop_rate}

    def _pair_masks(self, i: int, sk, pks: dict, like: State, others: Sequence[str]) -> State:
        total = {k: torch.zeros(v.shape, dtype=torch.int64) for k, v in like.items()}
        for other in others:
            j = self.sites.index(other)
            sign = 1 if i < j else -1
            seed = agree(sk, pks[other][1], "pairwise mask")
            for k, v in prg_mask(seed, like, self.modulus_bits).items():
                total[k] += sign * v
        return total

    def mask(self, site: str, rnd: int, payload: State, n_examples: int) -> State:
        """Step 3 at ``site``: its payload weighted by ``n_examples``, in fixed point,
        plus its self mask and its pairwise masks: what the server receives."""
        if site not in self.sites:
            raise ValueError(f"site {site!r} is not in the roster sites={self.sites}")
        plain = {k: v.double() * n_examples for k, v in payload.items()}
        plain[COUNT] = torch.tensor(float(n_examples), dtype=torch.float64)
        enc = {k: encode(v, self.scale_bits, self.modulus_bits) for k, v in plain.items()}
        self_mask = prg_mask(self._seed(site, rnd, "b"), enc, self.modulus_bits)
        pair = self._pair_masks(self.sites.index(site), self._key(site, rnd, "s")[0],
                                self.public_keys(rnd), enc, [s for s in self.sites if s != site])
        return {k: torch.remainder(enc[k] + self_mask[k] + pair[k], 2**self.modulus_bits)
                for k in enc}

    def unmask(self, rnd: int, updates: list[Update], sealed=None) -> State:
        """Step 4: the sum of the surviving sites' encoded updates, as floats. The
        holders open the shares ``sealed`` (owner -> holder -> bytes, as relayed by the
        server; by default those of :meth:`sealed_shares`): a tampered one is refused."""
        gone = self.drops(rnd)
        alive = [u for u in updates if u.site not in gone]
        if len(alive) < self.t:
            raise RuntimeError(f"round {rnd}: {len(alive)} sites survived, fewer than the "
                               f"threshold {self.t}; secure aggregation cannot unmask")
        m, like = 2**self.modulus_bits, alive[0].payload
        total = {k: sum(u.payload[k] for u in alive) % m for k in like}
        pks, names = self.public_keys(rnd), [u.site for u in alive]
        holders = names[:self.t]
        sealed = sealed or {s: self.sealed_shares(s, rnd) for s in self.sites}
        for u in alive:  # survivors' self masks, from the survivors' shares of b
            b = shamir_reconstruct([self._held(u.site, h, rnd, sealed)[1] for h in holders])
            for k, v in prg_mask(b.to_bytes(32, "big"), like, self.modulus_bits).items():
                total[k] = (total[k] - v) % m
        for d in sorted(set(self.sites) - set(names)):  # dropped: recover their key s
            sk = shamir_reconstruct([self._held(d, h, rnd, sealed)[0] for h in holders])
            sk = X25519PrivateKey.from_private_bytes(sk.to_bytes(32, "big"))
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
        total[COUNT] = total[COUNT] - sum(float(n_examples[s]) for s in alive)
        for k in payloads[self.sites[0]]:
            total[k] = total[k] - sum(n_examples[s] * payloads[s][k].double() for s in alive)
        return max(float(v.abs().max()) for v in total.values())

