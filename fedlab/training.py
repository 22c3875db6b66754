"""Local training and evaluation loops, seeded and device-aware."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Train", "TrainConfig", "batches", "train_epochs", "predict", "resolve_device",
           "derive_seed", "random_shift", "task_loss", "soft_dice_loss"]

ExtraLoss = Callable[[nn.Module], torch.Tensor]
AfterBackward = Callable[[nn.Module], None]
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """How a site trains locally in one round.

    Parameters
    ----------
    epochs : int
        Passes over the site's training data per round (>= 1), unless ``steps`` is set.
    steps : int or None
        If set, exactly this many mini-batch steps per round instead of epochs.
    batch_size : int
        Mini-batch size (>= 1).
    optimizer : {"sgd", "adam"}
        Local optimiser, re-created at every round.
    lr : float
        Learning rate of the local optimiser (in round 1, see ``lr_decay``).
    momentum : float
        SGD momentum (Adam ignores it).
    weight_decay : float
        L2 penalty of the local optimiser.
    lr_decay : float
        Round ``r`` (from 1) trains with ``lr * lr_decay ** (r - 1)``; 1 keeps it constant.
    augment : bool
        Shift each training image by up to 2 pixels at random (``random_shift``; volumes
        in-plane, along H and W).
    ssim_weight : float
        Reconstruction only: weight of ``1 - SSIM`` (MONAI's ``SSIMLoss``) added to the
        L1 loss; 0 (default) trains with L1 alone.
    """

    epochs: int = 1
    steps: int | None = None
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    augment: bool = False
    # recorded in a run's config only when set, so older configs still match
    ssim_weight: float = field(default=0.0, metadata={"omit_default": True})

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"local_epochs must be >= 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"local_steps must be >= 1 or None, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not self.ssim_weight >= 0:
            raise ValueError(f"ssim_weight must be >= 0, got {self.ssim_weight}")

    def for_round(self, round: int) -> TrainConfig:
        """This configuration with the learning rate of round ``round`` (from 1)."""
        if self.lr_decay == 1.0:
            return self
        return replace(self, lr=self.lr * self.lr_decay ** (round - 1), lr_decay=1.0)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay)


#: the name :func:`fedlab.run` and the lessons use (``fl.Train(lr=0.05)``)
Train = TrainConfig


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. run seed, round, site index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is used as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
                         ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but this torch has no CUDA device; use "
                         "device='cpu' or 'auto'")
    return dev


def batches(n: int, batch_size: int, generator: torch.Generator | None,
            shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index tensors of the mini-batches of one pass over ``n`` samples."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    yield from order.split(batch_size)


def train_epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                 generator: torch.Generator, extra_loss: ExtraLoss | None = None,
                 after_backward: AfterBackward | None = None,
                 loss: BatchLoss | None = None) -> dict[str, float]:
    """Train ``model`` in place on ``(x, y)`` as ``config`` says.

    ``extra_loss(model)`` is added to the loss (:func:`task_loss`) of every step (e.g. FedProx's
    proximal term); ``after_backward(model)`` may edit the gradients before the step
    (e.g. SCAFFOLD's correction); ``loss(model, xb, yb)``, when given, replaces the task
    loss of a batch (e.g. MOON's contrastive term, a distillation target). Returns the
    mean training loss and the step count.
    """
    model.train()
    opt = config.make_optimizer(model.parameters())
    total, steps, n = torch.zeros((), device=x.device), 0, len(y)
    limit = config.steps if config.steps is not None else None
    epochs = config.epochs if limit is None else 10**9
    for _ in range(epochs):
        for idx in batches(n, config.batch_size, generator):
            idx = idx.to(x.device)
            xb, yb = x[idx], y[idx]
            if config.augment:
                xb, yb = _augment(xb, yb, generator)
            value = (task_loss(model(xb), yb, config.ssim_weight) if loss is None
                     else loss(model, xb, yb))
            if extra_loss is not None:
                value = value + extra_loss(model)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if after_backward is not None:
                after_backward(model)
            opt.step()
            total += value.detach()
            steps += 1
            if limit is not None and steps >= limit:
                return {"train_loss": float(total) / steps, "steps": float(steps)}
    return {"train_loss": float(total) / max(steps, 1), "steps": float(steps)}


def task_loss(logits: torch.Tensor, target: torch.Tensor,
              ssim_weight: float = 0.0) -> torch.Tensor:
    """The training loss: cross-entropy for class labels ``(B,)``; cross-entropy plus
    :func:`soft_dice_loss` for masks ``(B, H, W)`` (the usual segmentation compound);
    the mean absolute error (L1) for target images ``(B, C, H, W)`` (reconstruction;
    L1 keeps edges sharper than L2, Zhao et al., "Loss Functions for Image Restoration
    with Neural Networks", IEEE TCI 2017), plus ``ssim_weight * (1 - SSIM)`` when set."""
    if target.is_floating_point():
        loss = F.l1_loss(logits, target)
        if ssim_weight:
            from monai.losses import SSIMLoss

            loss = loss + ssim_weight * SSIMLoss(spatial_dims=2, data_range=1.0,
                                                 win_size=7)(logits, target)
        return loss
    if target.ndim == 1:
        return F.cross_entropy(logits, target)
    return F.cross_entropy(logits, target) + soft_dice_loss(logits, target)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """One minus the soft Dice of the foreground classes, over the whole batch.

    ``logits`` ``(B, C, H, W)``, ``target`` masks ``(B, H, W)``; for each class ``c >= 1``
    the soft Dice is ``(2 sum(p_c t_c) + eps) / (sum(p_c) + sum(t_c) + eps)`` with ``p``
    the softmax probabilities and ``t`` the one-hot labels (Milletari et al., "V-Net",
    3DV 2016); ``eps`` keeps classes absent from the batch finite. Mean over classes.
    """
    probs = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
    dims = (0, *range(2, logits.ndim))  # volumes (B, C, D, H, W) too
    inter = (probs * onehot).sum(dims)
    dice = (2 * inter + eps) / (probs.sum(dims) + onehot.sum(dims) + eps)
    return 1.0 - dice.mean()


def _augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`random_shift` of the images, and of the masks with the same offset."""
    if y.is_floating_point():
        raise ValueError("augment=True shifts images, which would move a reconstruction "
                         "input away from its k-space mask; use augment=False")
    if y.ndim == 1:
        return random_shift(x, generator), y
    both = random_shift(torch.cat([x, y[:, None].to(x.dtype)], dim=1), generator)
    return both[:, :-1], both[:, -1].round().long()


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate the whole batch by one random offset of up to ``pixels`` along H and W
    (volumes ``(B, C, D, H, W)`` move in-plane; D is left as it is).

    Zero padding fills the border. One offset per batch keeps it cheap; over an epoch
    every image still sees many offsets.
    """
    dy, dx = (torch.randint(-pixels, pixels + 1, (2,), generator=generator)).tolist()
    if dy == 0 and dx == 0:
        return x
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    h, w = x.shape[-2:]
    return padded[..., pixels + dy:pixels + dy + h, pixels + dx:pixels + dx + w]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Class probabilities for ``x`` and the summed cross-entropy against ``y``; for
    target images ``y`` (reconstruction), the model's images and the summed absolute
    error."""
    model.eval()
    probs, loss = [], 0.0
    images = y.is_floating_point()
    for idx in batches(len(y), batch_size, None, shuffle=False):
        logits = model(x[idx])
        if images:
            loss += float(F.l1_loss(logits, y[idx], reduction="sum"))
            probs.append(logits.float().cpu())
            continue
        loss += float(F.cross_entropy(logits, y[idx], reduction="sum"))
        probs.append(torch.softmax(logits, dim=1).float().cpu())
    if not probs:
        return np.zeros((0, 0), dtype=np.float32), 0.0
    return torch.cat(probs).numpy(), loss
