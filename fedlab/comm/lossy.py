"""The lossy codec stages: 8-bit quantisation and top-k sparsification.

See :mod:`fedlab.comm.codecs` for how stages compose and what each sends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import SEP, Codec, CodecContext, Tensors, float_dtype

__all__ = ["Int8", "TopK", "DENSE_BELOW"]

#: :class:`TopK` sends tensors with fewer entries than this whole (biases, norm layers,
#: the first convolution): they cost little, and 1% of 16 entries is a single one
DENSE_BELOW = 1024


@dataclass(frozen=True)
class Int8(Codec):
    """8-bit integers with one float32 scale per tensor.

    ``q = round(x / s)`` with ``s = max|x| / 127``, so ``|x - q s| <= s / 2``. With
    ``stochastic=True`` the rounding is up or down at random with the probability that
    makes it unbiased (``E[q s] = x``), and the error stays below ``s``.
    """

    stochastic: bool = False

    def __str__(self) -> str:
        return "int8-sr" if self.stochastic else "int8"

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        out: Tensors = {}
        for k, v in tensors.items():
            if not v.is_floating_point():
                out[k] = v
                continue
            x = v.float()
            scale = x.abs().max() / 127 if x.numel() else x.new_zeros(())
            y = x / scale if scale > 0 else torch.zeros_like(x)
            if self.stochastic:
                noise = torch.rand(y.shape, generator=ctx.generator).to(y.device)
                y = torch.floor(y + noise)
            out[k + SEP + "q"] = y.round().clamp(-127, 127).to(torch.int8)
            out[k + SEP + "scale"] = scale.reshape(1)
        return out

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        out: Tensors = {}
        for k, v in tensors.items():
            if k.endswith(SEP + "scale"):
                continue
            if k.endswith(SEP + "q"):
                base = k[:-len(SEP + "q")]
                out[base] = (v.float() * tensors[base + SEP + "scale"]).to(
                    float_dtype(base, ctx))
            else:
                out[k] = v
        return out


@dataclass(frozen=True)
class TopK(Codec):
    """The ``fraction`` of entries with the largest magnitude, per tensor (at least one).

    Sends values and int32 indices. With ``error_feedback=True`` the sender keeps what it
    did not send (the residual) and adds it to its next message. Tensors with fewer than
    ``dense_below`` entries (biases, normalisation layers, small kernels) are sent whole:
    they are a sliver of the bytes, and a 1% budget would update one of a norm layer's 16
    scales per round while the rest of its change waits in the residual. Low-rank
    compression does the same (PowerSGD, Vogels et al., NeurIPS 2019, and PyTorch's
    PowerSGD hook leave a tensor uncompressed when compressing it saves too little).
    ``0`` sparsifies every tensor.
    """

    fraction: float = 0.01
    error_feedback: bool = False
    dense_below: int = DENSE_BELOW

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if isinstance(self.dense_below, bool) or not isinstance(self.dense_below, int) \
                or self.dense_below < 0:
            raise ValueError(f"dense_below must be an int >= 0 (tensors with fewer entries "
                             f"are sent whole; 0 sparsifies every tensor), got "
                             f"{self.dense_below!r}")

    def __str__(self) -> str:
        name = f"topk{'-ef' if self.error_feedback else ''}:{self.fraction:g}"
        return name if self.dense_below == DENSE_BELOW else f"{name}:{self.dense_below}"

    def k(self, numel: int) -> int:
        """Entries kept of a tensor with ``numel`` entries."""
        return min(numel, max(1, math.ceil(self.fraction * numel)))

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        out: Tensors = {}
        for key, v in tensors.items():
            if not v.is_floating_point() or v.numel() == 0 or v.numel() < self.dense_below:
                out[key] = v
                continue
            flat = v.reshape(-1)
            if self.error_feedback and key in ctx.memory:
                flat = flat + ctx.memory[key].to(flat)
            idx = flat.abs().topk(self.k(flat.numel()), sorted=False).indices.sort().values
            values = flat[idx]
            if self.error_feedback:
                residual = flat.clone()
                residual[idx] = 0
                ctx.memory[key] = residual
            out[key + SEP + "values"] = values
            out[key + SEP + "indices"] = idx.to(torch.int32)
        return out

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        out: Tensors = {}
        for k, v in tensors.items():
            if k.endswith(SEP + "indices"):
                continue
            if k.endswith(SEP + "values"):
                base = k[:-len(SEP + "values")]
                if base not in ctx.like:
                    raise KeyError(f"TopK.decode needs the shape of {base!r} in ctx.like")
                shape, dtype = ctx.like[base]
                dense = torch.zeros(math.prod(shape), dtype=v.dtype, device=v.device)
                dense[tensors[base + SEP + "indices"].long()] = v
                out[base] = dense.reshape(shape).to(dtype) if dtype.is_floating_point else dense
            else:
                out[k] = v
        return out
