"""Pure aggregation functions: tensors in, tensors out, no state."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["weighted_average", "is_finite"]

State = dict[str, torch.Tensor]


def weighted_average(states: Sequence[State], weights: Sequence[float]) -> State:
    """Weighted mean of several states with the same keys.

    Weights are normalised to sum to one (FedAvg uses the sites' example counts).
    Floating-point tensors are averaged in float64 then cast back; integer tensors
    (e.g. BatchNorm's ``num_batches_tracked``) get the rounded weighted mean.

    Parameters
    ----------
    states : sequence of dict of tensors
        The states to average (at least one); the first one's keys are used.
    weights : sequence of float
        One per state, at least 0, with a positive sum.
    """
    if not states:
        raise ValueError("states must not be empty")
    if len(states) != len(weights):
        raise ValueError(f"got {len(states)} states but {len(weights)} weights")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    w = w / w.sum()
    out: State = {}
    for key, ref in states[0].items():
        acc = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        for wi, state in zip(w, states, strict=True):
            acc += wi.item() * state[key].to(torch.float64)
        out[key] = acc.round().to(ref.dtype) if not ref.is_floating_point() else acc.to(ref.dtype)
    return out


def is_finite(state: State) -> bool:
    """True when every floating-point tensor of ``state`` holds only finite values."""
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
