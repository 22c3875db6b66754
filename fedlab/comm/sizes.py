"""How big is a message? Parameters and megabytes per model and codec."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ..models import ModelSpec
from .codecs import Codec, CodecContext, get_codec, serialized_size

__all__ = ["model_size", "model_sizes", "model_size_table", "message_size"]


def message_size(state: dict[str, torch.Tensor], codec: str | Codec | None = None) -> int:
    """Serialised bytes of ``state`` after ``codec`` (the size of one model message).

    A :class:`~fedlab.comm.Delta` stage keeps the size unchanged, so the state itself
    stands in for the update a site would send.
    """
    codec = get_codec(codec)
    like = {k: (v.shape, v.dtype) for k, v in state.items()}
    ctx = CodecContext(like=like, generator=torch.Generator().manual_seed(0))
    return serialized_size(codec.encode(state, ctx))


def model_size(model: str | nn.Module, codec: str | Codec | None = None,
               in_channels: int = 1, n_classes: int = 2, image_size: int = 28,
               ) -> dict[str, float]:
    """Parameters, tensors and MB of one message carrying ``model``'s state.

    ``model`` is a name of :data:`fedlab.models.MODELS` (built on the CPU with the given
    input shape; the MONAI nets import MONAI) or a module.

    Parameters
    ----------
    model : str or nn.Module
        The model, by name or as a module.
    codec : str, Codec or None
        How the message is encoded (as for :func:`~fedlab.comm.get_codec`; None sends it
        as it is).
    in_channels, n_classes, image_size : int
        Input channels, output classes and image side of a model built by name (ignored
        for a module).
    """
    if isinstance(model, str):
        name = model
        model = ModelSpec(model, in_channels, n_classes, image_size).build()
    else:
        name = type(model).__name__
    state = {k: v.detach() for k, v in model.state_dict().items()}
    raw = serialized_size(state)
    sent = message_size(state, codec)
    return {"model": name, "codec": str(get_codec(codec)),
            "parameters": sum(p.numel() for p in model.parameters()),
            "tensors": len(state), "raw_mb": raw / 1e6, "mb": sent / 1e6,
            "ratio": raw / sent}


def model_sizes(models: Sequence[str | nn.Module] = ("mlp", "cnn", "cnn-bn"),
                codecs: Sequence[str | Codec | None] = ("identity",), **shape) -> pd.DataFrame:
    """:func:`model_size` for every model and codec, one row each.

    Parameters
    ----------
    models : sequence of str or nn.Module
        Model names or modules (default the MLP and the CNN without and with BatchNorm).
    codecs : sequence of str, Codec or None
        The codecs to size each model's message with (default ``"identity"`` only).
    **shape
        ``in_channels``, ``n_classes``, ``image_size`` for models built by name.
    """
    rows = []
    for m in models:
        net = ModelSpec(m, **shape).build() if isinstance(m, str) else m
        for c in codecs:
            row = model_size(net, c)
            row["model"] = m if isinstance(m, str) else row["model"]
            rows.append(row)
    return pd.DataFrame(rows)


def model_size_table(models: Sequence[str | nn.Module] = ("mlp", "cnn", "cnn-bn"),
                     codecs: Sequence[str | Codec | None] = ("identity",),
                     **shape) -> pd.DataFrame:
    """:func:`model_sizes` as a wide table: one row per model (in the order given), a
    ``parameters`` column, then ``MB (<codec>)`` per codec (in the order given)."""
    long = model_sizes(models, codecs, **shape)
    names = list(dict.fromkeys(long["model"]))
    codec_names = list(dict.fromkeys(long["codec"]))
    table = long.pivot(index="model", columns="codec", values="mb").loc[names, codec_names]
    table.columns = [f"MB ({c})" for c in codec_names]
    table.insert(0, "parameters", long.groupby("model")["parameters"].first().loc[names])
    table.columns.name = None
    return table
