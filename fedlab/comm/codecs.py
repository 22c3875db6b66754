"""Codecs: what a message looks like on the wire, and how many bytes it takes.

A codec turns a dict of tensors (a model state, an update, control variates) into the
dict of tensors that is actually sent, and back. Stages compose with ``|`` (encoding
runs left to right, decoding right to left), e.g. ``Delta() | TopK(0.01,
error_feedback=True) | Cast("fp16")``. Every stage touches floating-point tensors only;
integer tensors (BatchNorm's ``num_batches_tracked``) pass through untouched.

What each stage sends, per floating-point tensor ``x``:

- :class:`Identity`: ``x`` as it is (float32: 4 bytes per entry).
- :class:`Cast` (``"fp16"``, ``"bf16"``): ``x`` in 16 bits (2 bytes per entry).
- :class:`Int8`: ``round(x / s)`` as int8 plus one float32 scale ``s = max|x| / 127``
  per tensor (Alistarh et al., "QSGD: Communication-Efficient SGD via Gradient
  Quantization and Encoding", NeurIPS 2017, for the unbiased stochastic rounding).
- :class:`TopK`: the ``k`` entries of largest magnitude as values and int32 indices
  (Aji and Heafield, "Sparse Communication for Distributed Gradient Descent", EMNLP
  2017). With ``error_feedback`` the entries not sent are kept at the sender and added
  to the next message (Stich, Cordonnier and Jaggi, "Sparsified SGD with Memory",
  NeurIPS 2018), so nothing is lost, only delayed. Tensors under 1024 entries (biases,
  norm layers) are sent whole (``dense_below``). Delayed updates still have to arrive
  while training moves the model: with a learning rate that decays fast (0.7x per
  round) top-k 1% with error feedback falls behind, with 0.9x it keeps level with
  uncompressed FedAvg (``benchmarks/results/comm_tradeoff.md``).
- :class:`Delta`: ``x - ref``, the change since the state both ends already hold (for an
  upload: what the site received). Top-k must sparsify such an update, never raw weights.

The size of a message is :func:`serialized_size`: the length of its safetensors bytes.
Codec state (error-feedback residuals) is the ``memory`` dict of the side that encodes,
kept per site by :func:`fedlab.run` and saved in its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from .base import (
    SEP,
    Chain,
    Codec,
    CodecContext,
    SizeCounter,
    Tensors,
    float_dtype,
    serialized_size,
)
from .lossy import Int8, TopK

__all__ = ["Codec", "Chain", "Identity", "Cast", "Delta", "CodecContext", "SizeCounter",
           "get_codec", "serialized_size", "roundtrip", "CODECS", "SEP", "Tensors"]


@dataclass(frozen=True)
class Identity(Codec):
    """Sends the tensors as they are."""

    name: ClassVar[str] = "identity"
    exact: ClassVar[bool] = True

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        return dict(tensors)

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        return dict(tensors)


@dataclass(frozen=True)
class Cast(Codec):
    """Floating-point tensors in 16 bits: ``"fp16"`` (IEEE half) or ``"bf16"`` (bfloat16).

    Parameters
    ----------
    dtype : str
        ``"fp16"`` (default) or ``"bf16"``; decoding casts back to the original dtype.
    """

    dtype: Literal["fp16", "bf16"] = "fp16"

    def __post_init__(self) -> None:
        if self.dtype not in ("fp16", "bf16"):
            raise ValueError(f"dtype must be 'fp16' or 'bf16', got {self.dtype!r}")

    def __str__(self) -> str:
        return self.dtype

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        dt = torch.float16 if self.dtype == "fp16" else torch.bfloat16
        return {k: v.to(dt) if v.is_floating_point() else v for k, v in tensors.items()}

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        return {k: v.to(float_dtype(k, ctx)) if v.is_floating_point() else v
                for k, v in tensors.items()}


@dataclass(frozen=True)
class Delta(Codec):
    """Sends ``x - ref`` for every floating-point tensor whose key is in ``ctx.ref``."""

    name: ClassVar[str] = "delta"
    exact: ClassVar[bool] = True
    needs_ref: ClassVar[bool] = True

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        return {k: v - ctx.ref[k].to(v) if _delta_key(k, v, ctx) else v
                for k, v in tensors.items()}

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        return {k: v + ctx.ref[k].to(v) if _delta_key(k, v, ctx) else v
                for k, v in tensors.items()}


def _delta_key(key: str, v: torch.Tensor, ctx: CodecContext) -> bool:
    return v.is_floating_point() and key in ctx.ref and ctx.ref[key].is_floating_point()


def roundtrip(codec: Codec, tensors: Tensors, ctx: CodecContext | None = None,
              ) -> tuple[Tensors, Tensors]:
    """``(wire, decoded)``: what ``codec`` sends for ``tensors`` and what arrives.

    Parameters
    ----------
    codec : Codec
        The codec to apply.
    tensors : dict of tensors
        The message to encode.
    ctx : CodecContext, optional
        Reference state, memory and generator; a fresh empty one by default. Its ``like``
        is filled from ``tensors`` when empty, and its ``memory`` is updated in place.
    """
    ctx = ctx or CodecContext()
    ctx.like = ctx.like or {k: (v.shape, v.dtype) for k, v in tensors.items()}
    wire = codec.encode(tensors, ctx)
    return wire, codec.decode(wire, ctx)


#: codec names understood by :func:`get_codec`; ``topk`` sparsifies the update, so its
#: names stand for ``Delta() | TopK(...)``
CODECS = ("identity", "fp16", "bf16", "int8", "int8-sr", "delta", "topk:F[:N]",
          "topk-ef:F[:N]")


def get_codec(spec: str | Codec | None) -> Codec:
    """A codec from an object, ``None`` (identity) or a name; names compose with ``|``.

    Examples: ``"fp16"``, ``"int8-sr"`` (stochastic rounding), ``"topk:0.01"``
    (``Delta() | TopK(0.01)``), ``"topk-ef:0.01"`` (with error feedback),
    ``"topk-ef:0.01|fp16"``, ``"topk-ef:0.01:0"`` (``N = 0``: sparsify every tensor,
    also those below :data:`~fedlab.comm.lossy.DENSE_BELOW` entries that are otherwise
    sent whole).

    Parameters
    ----------
    spec : str, Codec or None
        A name from :data:`CODECS` (or several joined by ``|``), a codec (returned as it
        is), or ``None`` for :class:`Identity`.
    """
    if spec is None:
        return Identity()
    if isinstance(spec, Codec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"codec must be a Codec, a name or None, got {type(spec).__name__}")
    parts = [_one(p.strip().lower(), spec) for p in spec.split("|")]
    codec = parts[0]
    for p in parts[1:]:
        codec = codec | p
    deltas = [i for i, s in enumerate(codec.stages) if isinstance(s, Delta)]
    if len(deltas) > 1:  # "delta|topk:0.1": one Delta stage is enough
        codec = Chain(tuple(s for i, s in enumerate(codec.stages)
                            if not isinstance(s, Delta) or i == deltas[0]))
    return codec


def _one(name: str, spec: str) -> Codec:
    simple = {"identity": Identity(), "none": Identity(), "fp16": Cast("fp16"),
              "bf16": Cast("bf16"), "int8": Int8(), "int8-sr": Int8(stochastic=True),
              "delta": Delta()}
    if name in simple:
        return simple[name]
    head, _, arg = name.partition(":")
    if head in ("topk", "topk-ef"):
        frac, _, dense = arg.partition(":")
        try:
            fraction = float(frac)
            kw = {"dense_below": int(dense)} if dense else {}
        except ValueError:
            raise ValueError(f"codec {spec!r}: {head} needs a fraction and, optionally, the "
                             f"size below which tensors are sent whole, e.g. '{head}:0.01' "
                             f"or '{head}:0.01:0'") from None
        return Delta() | TopK(fraction, error_feedback=head == "topk-ef", **kw)
    raise ValueError(f"codec must be one of {', '.join(CODECS)} (F a fraction in (0, 1], "
                     f"N the size below which tensors are sent whole), "
                     f"or several joined by '|', got {spec!r}")
