"""fedlab's values as Flower records, and back: what travels in a deployment's messages.

A :class:`~fedlab.strategies.base.Update` or a state (a dict of tensors, possibly
nested, e.g. SCAFFOLD's site state ``{"control": {...}}``) becomes a ``flwr.app.RecordDict``: the
tensors in an ``ArrayRecord`` (Flower's own tensor serialisation, so the bytes Flower
reports are those of the model), the numbers in a ``MetricRecord`` / ``ConfigRecord``.
Nothing is pickled: a SuperNode at a hospital never unpickles what the server sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..strategies.base import State, Update

__all__ = ["flatten", "unflatten", "state_record", "record_state", "update_record",
           "record_update", "payload_bytes"]

SEP = "\x1f"  # ASCII unit separator: state keys already use "." and "/"


def flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """``state`` with nested dicts joined into ``"outer<US>inner"`` keys (US: the ASCII
    unit separator); tensors only."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if SEP in key:
            raise ValueError(f"state key {key!r} holds {SEP!r}, which the deployment's "
                             "records use to nest")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value:
                raise ValueError(f"state entry {name!r} is an empty dict; a deployment "
                                 "cannot send it")
            out.update(flatten(value, name + SEP))
        elif isinstance(value, torch.Tensor):
            out[name] = value.detach().cpu().contiguous()
        else:
            raise TypeError(f"state entry {name!r} is a {type(value).__name__}; a deployment "
                            "sends tensors (and dicts of them) only")
    return out


def unflatten(flat: Mapping[str, torch.Tensor]) -> State:
    """The nested state :func:`flatten` came from."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *outer, last = key.split(SEP)
        node = out
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def state_record(state: State):
    """A state as an ``ArrayRecord``."""
    from flwr.app import ArrayRecord

    return ArrayRecord(flatten(state))


def record_state(record) -> State:
    """The state an ``ArrayRecord`` of :func:`state_record` holds."""
    return unflatten(record.to_torch_state_dict())


def update_record(update: Update):
    """An :class:`Update` as a ``RecordDict`` (payload, examples and metrics)."""
    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    return RecordDict({
        "payload": state_record(update.payload),
        "metrics": MetricRecord({k: float(v) for k, v in update.metrics.items()}),
        "update": ConfigRecord({"site": update.site, "n_examples": int(update.n_examples)}),
    })


def record_update(content) -> Update:
    """The :class:`Update` a ``RecordDict`` of :func:`update_record` holds."""
    info = content["update"]
    return Update(str(info["site"]), record_state(content["payload"]), int(info["n_examples"]),
                  {k: float(v) for k, v in content["metrics"].items()})


def payload_bytes(content) -> int:
    """The bytes of a ``RecordDict`` as Flower serialises it for the wire (protobuf)."""
    from flwr.common.serde import recorddict_to_proto

    return int(recorddict_to_proto(content).ByteSize())
