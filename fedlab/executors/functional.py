"""The pieces of vectorised local training: a network that ``torch.func.vmap`` runs fast
and exactly, and SGD and Adam as functions of stacked tensors.

:func:`vectorisable` copies a network with two layers replaced by equivalents that batch
well under ``vmap``: ``nn.GroupNorm`` by :class:`GroupNorm` (the same statistics, with
the per-site affine part outside torch's group norm, whose batching rule for it is
slow) and ``nn.Dropout`` by :class:`MaskDropout`, which multiplies by a mask the caller
passes in. The masks are drawn per site from the same seeded stream the sequential
executor's dropout uses, so on the CPU both executors drop the same units.

:func:`sgd_step` and :func:`adam_step` follow ``torch.optim.SGD`` (momentum, weight decay,
no dampening or Nesterov) and ``torch.optim.Adam`` (L2 weight decay, no AMSGrad) step for
step, on tensors that carry the sites in their first dimension; ``active`` keeps the
sites that have no step left exactly where they are.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroupNorm", "MaskDropout", "vectorisable", "unsupported_layer", "sgd_step",
           "adam_step", "masked"]


class GroupNorm(nn.Module):
    """``nn.GroupNorm`` as torch's group norm without its affine part, followed by the
    affine part as a broadcast: the same parameters and statistics. Under ``vmap`` the
    affine-free group norm folds the sites into its batch, where ``nn.GroupNorm``'s
    per-site weights take a slow path (measured here: a vectorised CNN step 1.4x
    faster than with a reshape-based group norm, which in turn beat ``nn.GroupNorm``)."""

    def __init__(self, source: nn.GroupNorm) -> None:
        super().__init__()
        self.groups, self.eps = source.num_groups, source.eps
        self.weight = source.weight if source.affine else None
        self.bias = source.bias if source.affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.group_norm(x, self.groups, None, None, self.eps)
        if self.weight is not None:
            view = (1, -1) + (1,) * (x.ndim - 2)
            out = out * self.weight.reshape(view) + self.bias.reshape(view)
        return out


class MaskDropout(nn.Module):
    """Dropout by a given mask: ``x * mask`` (the mask holds ``0`` or ``1 / (1 - p)``).

    The mask is a buffer, so ``functional_call`` passes each site's own mask per step.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.ones(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def unsupported_layer(net: nn.Module) -> str | None:
    """Why ``net`` cannot be vectorised exactly, or None when it can."""
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            return (f"layer {name!r} is a {type(module).__name__} whose running statistics "
                    "each site updates in place")
        if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Dropout1d,
                               nn.Dropout2d, nn.Dropout3d)):
            return f"layer {name!r} is a {type(module).__name__}"
    return None


def vectorisable(net: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``net`` with GroupNorm and Dropout replaced (see the module docstring),
    and the names of its :class:`MaskDropout` layers in the order they run."""
    twin = copy.deepcopy(net)
    drops = []
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.GroupNorm:
                setattr(module, child_name, GroupNorm(child))
            elif type(child) is nn.Dropout:
                setattr(module, child_name, MaskDropout(child.p))
                drops.append(full)
    return twin, drops


def dropout_shapes(net: nn.Module, drops: list[str], sample: torch.Tensor) -> dict[str, tuple]:
    """The per-example shape of each mask layer's input, from one forward of ``sample``."""
    shapes: dict[str, tuple] = {}
    modules = dict(net.named_modules())
    hooks = [modules[n].register_forward_pre_hook(
        lambda m, args, n=n: shapes.__setitem__(n, tuple(args[0].shape[1:]))) for n in drops]
    try:
        with torch.no_grad():
            net(sample)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def masked(active: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` for the active sites (first dimension), ``old`` for the others."""
    return torch.where(active.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def sgd_step(params: dict, grads: dict, state: dict, active: torch.Tensor, lr: float,
             momentum: float, weight_decay: float) -> tuple[dict, dict]:
    """One ``torch.optim.SGD`` step of every active site; returns new params and state."""
    new_params, new_state = {}, {}
    for k, p in params.items():
        # the same operations as torch.optim.SGD, so that they round the same way
        d = grads[k] if weight_decay == 0 else torch.add(grads[k], p, alpha=weight_decay)
        if momentum:
            buf = state.get(k)
            buf = (masked(active, d, torch.zeros_like(d)) if buf is None
                   else masked(active, torch.add(buf * momentum, d), buf))
            new_state[k] = d = buf
        new_params[k] = masked(active, torch.add(p, d, alpha=-lr), p)
    return new_params, new_state


def adam_step(params: dict, grads: dict, state: dict, active: torch.Tensor, step: int,
              lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8) -> tuple[dict, dict]:
    """One ``torch.optim.Adam`` step (number ``step``, from 1) of every active site.

    Sites stop in order of their step counts, so all active sites share the step number.
    """
    b1, b2 = betas
    bc1, bc2 = 1 - b1 ** step, (1 - b2 ** step) ** 0.5
    new_params, new_state = {}, {}
    for k, p in params.items():
        g = grads[k] if weight_decay == 0 else torch.add(grads[k], p, alpha=weight_decay)
        m, v = state.get(k, (torch.zeros_like(p), torch.zeros_like(p)))
        m2 = torch.lerp(m, g, 1 - b1)
        v2 = torch.addcmul(v * b2, g, g, value=1 - b2)
        step_p = torch.addcdiv(p, m2, v2.sqrt() / bc2 + eps, value=-lr / bc1)
        new_state[k] = (masked(active, m2, m), masked(active, v2, v))
        new_params[k] = masked(active, step_p, p)
    return new_params, new_state


def weighted_ce(logits: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the real examples of a padded batch (weight 1 or 0)."""
    losses = F.cross_entropy(logits, target, reduction="none")
    return (losses * weight).sum() / weight.sum().clamp(min=1)
