"""The cryptography of secure aggregation, from the ``cryptography`` package.

- Key agreement: X25519 (Bernstein, "Curve25519: new Diffie-Hellman speed records",
  PKC 2006); the shared secret goes through HKDF-SHA256 (RFC 5869) with a label per use,
  so the mask seed and the share-encryption key of a pair are independent.
- Masks: the ChaCha20 key stream (RFC 8439) of a 32-byte seed, read as 64-bit words
  reduced modulo ``2**modulus_bits`` (uniform, since the modulus divides ``2**64``).
- Shares through the server: AES-256-GCM (NIST SP 800-38D), the sender, receiver and
  round bound as associated data, so a changed, swapped or replayed share is refused.
- Secret sharing: Shamir, "How to Share a Secret", CACM 1979, over the prime field of
  the Mersenne prime ``2**521 - 1``, large enough for a 32-byte key in one element.

Fixed-point :func:`encode` / :func:`decode` turn float updates into integers modulo
``2**modulus_bits`` where masks can cancel exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["PRIME", "KEY_BYTES", "SHARE_BYTES", "SEAL_BYTES", "encode", "decode",
           "shamir_share", "shamir_reconstruct", "derive", "keypair", "agree", "prg_mask",
           "seal", "open_sealed", "share_to_bytes", "share_from_bytes"]

State = dict[str, torch.Tensor]

PRIME = 2**521 - 1  # the field of the Shamir shares
KEY_BYTES = 32      # an X25519 public key
SHARE_BYTES = 2 + 66  # one share: its index (2 bytes) and a field element (66 bytes)
SEAL_BYTES = 12 + 16  # what AES-GCM adds: the nonce and the tag


def encode(x: torch.Tensor, scale_bits: int, modulus_bits: int) -> torch.Tensor:
    """Fixed point: ``round(x * 2**scale_bits) mod 2**modulus_bits`` as int64.

    Parameters
    ----------
    x : tensor
        Values to encode.
    scale_bits, modulus_bits : int
        Fractional bits and the modulus' bits (at most 62, for int64 sums).
    """
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
    """Lagrange interpolation at 0 of ``shares`` (at least the threshold of them)."""
    total = 0
    for j, (xj, yj) in enumerate(shares):
        num = den = 1
        for m, (xm, _) in enumerate(shares):
            if m != j:
                num = num * (-xm) % PRIME
                den = den * (xj - xm) % PRIME
        total = (total + yj * num * pow(den, -1, PRIME)) % PRIME
    return total


def share_to_bytes(share: tuple[int, int]) -> bytes:
    """One share as :data:`SHARE_BYTES` bytes."""
    return share[0].to_bytes(2, "big") + share[1].to_bytes(66, "big")


def share_from_bytes(data: bytes) -> tuple[int, int]:
    """The share :func:`share_to_bytes` wrote into ``data``."""
    return int.from_bytes(data[:2], "big"), int.from_bytes(data[2:SHARE_BYTES], "big")


def derive(secret: bytes, info: str, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``secret`` for the use named ``info``: ``length`` bytes."""
    return HKDF(hashes.SHA256(), length, salt=None, info=info.encode()).derive(secret)


def keypair(seed: bytes) -> tuple[X25519PrivateKey, bytes]:
    """An X25519 private key made from ``seed`` (32 bytes) and its raw public key."""
    private = X25519PrivateKey.from_private_bytes(derive(seed, "x25519 private key"))
    return private, private.public_key().public_bytes_raw()


def agree(private: X25519PrivateKey, peer_public: bytes, info: str) -> bytes:
    """The 32-byte secret two sites share for the use ``info``: equal for
    ``(sk_i, pk_j)`` and ``(sk_j, pk_i)``."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return derive(shared, info)


def prg_mask(seed: bytes, like: State, modulus_bits: int) -> State:
    """Pseudo-random integers in ``[0, 2**modulus_bits)`` shaped like ``like`` (its keys
    in sorted order), from the ChaCha20 stream of the 32-byte ``seed``."""
    keys = sorted(like)
    sizes = [like[k].numel() for k in keys]
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    words = np.frombuffer(stream.update(bytes(8 * sum(sizes))), dtype=np.uint64)
    words = (words & np.uint64(2**modulus_bits - 1)).astype(np.int64)
    out, start = {}, 0
    for k, n in zip(keys, sizes, strict=True):
        out[k] = torch.from_numpy(words[start:start + n].copy()).reshape(like[k].shape)
        start += n
    return out


def seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes) -> bytes:
    """AES-256-GCM: ``nonce + ciphertext + tag`` (``len(plaintext) + SEAL_BYTES``).

    Parameters
    ----------
    key : bytes
        32 bytes (from :func:`agree`).
    plaintext, aad : bytes
        What to encrypt, and what to bind to it without encrypting (who, to whom, when).
    nonce : bytes
        12 bytes, never reused with the same key.
    """
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of :func:`seal`'s ``blob``; a ValueError when it was altered."""
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], aad)
    except InvalidTag:
        raise ValueError(f"a sealed share failed authentication ({aad.decode()}): it was "
                         "altered, or sent to the wrong site") from None
