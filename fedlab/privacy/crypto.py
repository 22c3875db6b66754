"""The arithmetic of secure aggregation: fixed point, Shamir shares, key agreement, masks.

Shamir, "How to Share a Secret", Communications of the ACM 1979; Diffie and Hellman,
"New Directions in Cryptography", IEEE Transactions on Information Theory 1976. The
group (integers modulo the Mersenne prime ``2**61 - 1``) and the PRG (PyTorch's
generator) make a faithful *simulation* of the protocol, far too weak for real use.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

__all__ = ["PRIME", "GENERATOR", "encode", "decode", "shamir_share", "shamir_reconstruct",
           "public_key", "agree", "prg_mask"]

State = dict[str, torch.Tensor]

PRIME = 2**61 - 1  # field of the Shamir shares and group of the toy Diffie-Hellman
GENERATOR = 3


def encode(x: torch.Tensor, scale_bits: int, modulus_bits: int) -> torch.Tensor:
    """Fixed point: ``round(x * 2**scale_bits) mod 2**modulus_bits`` as int64."""
    q = torch.round(x.double() * 2.0**scale_bits).to(torch.int64)
    return torch.remainder(q, 2**modulus_bits)


def decode(v: torch.Tensor, scale_bits: int, modulus_bits: int) -> torch.Tensor:
    """The inverse of :func:`encode` (values above half the modulus are negative).

    Parameters
    ----------
    v : tensor of int64
        Fixed-point values in ``[0, 2**modulus_bits)``, e.g. a sum of encoded tensors.
    scale_bits, modulus_bits : int
        The fractional bits and the modulus' bits ``v`` was encoded with.
    """
    m = 2**modulus_bits
    signed = torch.where(v >= m // 2, v - m, v)
    return signed.double() / 2.0**scale_bits


def shamir_share(secret: int, n: int, t: int, rng: random.Random) -> list[tuple[int, int]]:
    """``n`` shares ``(x, f(x))`` of ``secret`` (< PRIME); any ``t`` of them recover it.

    Parameters
    ----------
    secret : int
        The value to share (taken modulo PRIME).
    n, t : int
        Number of shares and threshold, ``1 <= t <= n``.
    rng : random.Random
        Draws the random coefficients of the degree ``t - 1`` polynomial.
    """
    if not 1 <= t <= n:
        raise ValueError(f"threshold must be in [1, {n}], got {t}")
    coeffs = [secret % PRIME] + [rng.randrange(PRIME) for _ in range(t - 1)]
    return [(x, sum(c * pow(x, k, PRIME) for k, c in enumerate(coeffs)) % PRIME)
            for x in range(1, n + 1)]


def shamir_reconstruct(shares: Sequence[tuple[int, int]]) -> int:
    """Lagrange interpolation at 0 of the shares (needs at least the threshold)."""
    total = 0
    for j, (xj, yj) in enumerate(shares):
        num = den = 1
        for m, (xm, _) in enumerate(shares):
            if m != j:
                num = num * (-xm) % PRIME
                den = den * (xj - xm) % PRIME
        total = (total + yj * num * pow(den, -1, PRIME)) % PRIME
    return total


def public_key(secret_key: int) -> int:
    """``g**sk mod p``: the DH public key of ``secret_key``."""
    return pow(GENERATOR, secret_key, PRIME)


def agree(secret_key: int, other_public: int) -> int:
    """The DH shared secret: the same for ``(sk_i, pk_j)`` and ``(sk_j, pk_i)``."""
    return pow(other_public, secret_key, PRIME)


def prg_mask(seed: int, like: State, modulus_bits: int) -> State:
    """Pseudo-random integers in ``[0, 2**modulus_bits)`` shaped like ``like``."""
    gen = torch.Generator().manual_seed(seed % 2**63)
    return {k: torch.randint(0, 2**modulus_bits, tuple(like[k].shape), generator=gen,
                             dtype=torch.int64) for k in sorted(like)}
