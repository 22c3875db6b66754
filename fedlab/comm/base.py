"""The codec interface, shared by every codec module: a stage encodes and decodes a dict
of tensors; stages chain with ``|``; a message's size is its serialised bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from safetensors.torch import save

__all__ = ["Codec", "Chain", "CodecContext", "SEP", "SizeCounter", "Tensors", "float_dtype",
           "serialized_size"]

Tensors = dict[str, torch.Tensor]
SEP = "::"  # separates a state key from the part of its encoding (values, indices, scale)


def serialized_size(tensors: Tensors) -> int:
    """Bytes of ``tensors`` serialised with safetensors (what goes on the wire)."""
    if not tensors:
        return 0
    return len(save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


class SizeCounter:
    """:func:`serialized_size`, cached: it depends on names, dtypes and shapes only."""

    def __init__(self) -> None:
        self._sizes: dict[tuple, int] = {}

    def __call__(self, tensors: Tensors) -> int:
        layout = tuple((k, tuple(v.shape), v.dtype) for k, v in tensors.items())
        if layout not in self._sizes:
            self._sizes[layout] = serialized_size(tensors)
        return self._sizes[layout]


@dataclass
class CodecContext:
    """What an encoder or decoder may use besides the message itself.

    ``ref``: the state both ends already hold (for :class:`Delta`); ``like``: shape and
    dtype of every tensor before encoding (known to both ends: they share the model
    architecture); ``memory``: the encoding side's persistent codec state, read and
    updated in place; ``generator``: randomness for stochastic rounding.
    """

    ref: Tensors = field(default_factory=dict)
    like: dict[str, tuple[torch.Size, torch.dtype]] = field(default_factory=dict)
    memory: Tensors = field(default_factory=dict)
    generator: torch.Generator | None = None


@dataclass(frozen=True)
class Codec:
    """Base of codec stages: ``encode`` and ``decode`` map dicts of tensors."""

    name: ClassVar[str] = "codec"
    #: decoding returns exactly what was encoded (a stage's own property)
    exact: ClassVar[bool] = False
    #: the stage needs the state both ends hold (``ctx.ref``)
    needs_ref: ClassVar[bool] = False

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        raise NotImplementedError

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        raise NotImplementedError

    @property
    def stages(self) -> tuple[Codec, ...]:
        return (self,)

    @property
    def lossless(self) -> bool:
        """True when decoding returns exactly what was encoded."""
        return all(s.exact for s in self.stages)

    @property
    def uses_ref(self) -> bool:
        """True when the codec needs the state both ends hold (a :class:`Delta` stage)."""
        return any(s.needs_ref for s in self.stages)

    def __or__(self, other: Codec) -> Chain:
        if not isinstance(other, Codec):
            return NotImplemented
        return Chain(self.stages + other.stages)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Chain(Codec):
    """Stages applied one after the other (build it with ``a | b``).

    Parameters
    ----------
    parts : tuple of Codec
        The stages in encoding order (decoding runs them in reverse); empty acts as
        :class:`Identity`.
    """

    parts: tuple[Codec, ...] = ()
    name: ClassVar[str] = "chain"

    @property
    def stages(self) -> tuple[Codec, ...]:
        return self.parts

    def encode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        for i, stage in enumerate(self.parts):
            tensors = _with_memory(stage.encode, i, tensors, ctx)
        return tensors

    def decode(self, tensors: Tensors, ctx: CodecContext) -> Tensors:
        for i in reversed(range(len(self.parts))):
            tensors = _with_memory(self.parts[i].decode, i, tensors, ctx)
        return tensors

    def __str__(self) -> str:
        return "|".join(str(s) for s in self.parts) or "identity"


def _with_memory(fn, i: int, tensors: Tensors, ctx: CodecContext) -> Tensors:
    """Run one stage with its own slice (prefix ``"i/"``) of the shared memory."""
    prefix = f"{i}/"
    own = {k[len(prefix):]: v for k, v in ctx.memory.items() if k.startswith(prefix)}
    sub = CodecContext(ctx.ref, ctx.like, own, ctx.generator)
    out = fn(tensors, sub)
    ctx.memory.update({prefix + k: v for k, v in own.items()})
    return out


def float_dtype(key: str, ctx: CodecContext) -> torch.dtype:
    """The dtype a decoded tensor ``key`` must have again (float32 when unknown)."""
    base = key.split(SEP)[0]
    return ctx.like[base][1] if base in ctx.like else torch.float32
